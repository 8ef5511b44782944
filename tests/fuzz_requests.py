"""Hypothesis strategies for requests to the API, well-formed and not, drawn from its OpenAPI document
and the classical engines' declared options; and the check every answer must pass.

Used by tests/test_fuzz.py (a short run in the test suite) and benchmarks/fuzz_probe.py (a long one).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests
from conftest import png_header_only
from hypothesis import strategies as st

from backend.api.openapi import DOCUMENT
from backend.classical import ENGINES
from backend.images import encode_png

FILL_FIELDS = DOCUMENT["paths"]["/api/v1/inpaint"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
OPTIONS = {cls.id: {k: p.as_dict() for k, p in cls.params.items()} for cls in ENGINES}


def _box(h: int, w: int, value: int = 255) -> bytes:
    m = np.zeros((h, w), np.uint8)
    m[h // 4: h // 2, w // 4: w // 2] = value
    return encode_png(m)


_IMAGE = encode_png(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
IMAGES = [_IMAGE, _IMAGE[:60], b"", b"GIF89a not really", png_header_only(40000, 40000), png_header_only(0, 5),
          encode_png(np.zeros((16, 16, 4), np.uint16)), encode_png(np.zeros((1, 1), np.uint8))]
MASKS = [_box(16, 16), _box(16, 16, 128), encode_png(np.zeros((16, 16), np.uint8)),
         encode_png(np.full((16, 16), 255, np.uint8)), _box(8, 16), b"\x89PNG\r\n", _IMAGE]

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
JUNK = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=10)
NUMERALS = st.sampled_from(["1_000", "\u0661", "\u0663\u0662", " 5", "5 ", "0x10", "1e3", "-0", "+1", "9" * 40, "nan",
                            "inf", "", "0.5", "-1", "2147483648", "\u00b2", "\uff15"])
DEEP = st.integers(20, 3000).map(lambda n: "[" * n + "]" * n)


def _valid(schema: dict[str, Any]) -> st.SearchStrategy:
    """A value the schema allows (for integers, within its bounds)."""
    if "enum" in schema or "choices" in schema:
        return st.sampled_from(schema.get("enum") or schema["choices"])
    if "const" in schema:
        return st.just(schema["const"])
    if "oneOf" in schema:
        return st.one_of([_valid(s) for s in schema["oneOf"]])
    kind = schema.get("type")
    if kind in ("integer", "int"):
        return st.integers(int(schema.get("minimum", -(2**31))), int(schema.get("maximum", 2**31)))
    if kind == "float":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False)
    if kind == "object":
        return st.dictionaries(st.text(max_size=10), SCALARS, max_size=3)
    return st.text(max_size=20)


def _value(schema: dict[str, Any]) -> st.SearchStrategy:
    """Mostly what the schema allows, else anything a careless or hostile client might send."""
    return st.one_of(_valid(schema), _valid(schema), JUNK, NUMERALS, DEEP)


@st.composite
def _options(draw, model: Any, sane: bool) -> Any:
    params = OPTIONS.get(model, {}) if isinstance(model, str) else {}
    if params and (sane or draw(st.booleans())):
        names = draw(st.lists(st.sampled_from(sorted(params)), unique=True, max_size=len(params)))
        return {name: draw((_valid if sane else _value)(params[name])) for name in names}
    return {} if sane else draw(st.one_of(st.just({}), JUNK, DEEP))


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None  # multipart text fields
    files: dict[str, bytes] | None = None  # multipart file parts
    json_body: Any = None
    raw: bytes | None = None  # a body sent as is, with the headers' Content-Type

    def send(self, url: str, timeout: float = 60) -> requests.Response:
        kwargs: dict[str, Any] = {"headers": self.headers, "timeout": timeout}
        if self.files is not None or self.form is not None:
            kwargs["files"] = {name: (name, data) for name, data in (self.files or {}).items()} or None
            kwargs["data"] = self.form
        elif self.raw is not None:
            kwargs["data"] = self.raw
        elif self.json_body is not None:
            kwargs["data"] = self.json_body if isinstance(self.json_body, str) else json.dumps(self.json_body)
            kwargs["headers"] = {"Content-Type": "application/json", **self.headers}
        return requests.request(self.method, url + self.path, **kwargs)


@st.composite
def _fill(draw, path: str) -> Call:
    """Half of them well-formed (values the schema allows: most get filled), half anything at all."""
    sane = draw(st.booleans())
    fields = {}
    for name in draw(st.lists(st.sampled_from(sorted(set(FILL_FIELDS) - {"image", "mask", "source", "options"})), unique=True)):
        fields[name] = draw((_valid if sane else _value)(FILL_FIELDS[name]))
    if sane:
        fields["model"] = draw(st.sampled_from(sorted(OPTIONS)))
    if draw(st.booleans()):
        fields["options"] = draw(_options(fields.get("model"), sane))
    if not sane and draw(st.sampled_from([False] * 9 + [True])):
        fields[draw(st.text(max_size=12))] = draw(JUNK)  # a field the API does not have
    image, mask = (IMAGES[0], MASKS[0]) if sane else (draw(st.sampled_from(IMAGES)), draw(st.sampled_from(MASKS)))
    headers = {"Accept": draw(st.sampled_from(["image/png", "application/json", "*/*", "text/html", ""]))}
    kind = draw(st.sampled_from(["multipart", "json"] if sane else ["multipart", "json", "raw"]))
    if kind == "multipart":
        form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        parts = ("image", image), ("mask", mask)
        files = {k: v for k, v in parts if sane or draw(st.sampled_from([True] * 9 + [False]))}
        return Call("POST", path, headers, form=form, files=files)
    if kind == "json":
        body = {**fields, "image": base64.b64encode(image).decode(), "mask": base64.b64encode(mask).decode()}
        if not sane and draw(st.sampled_from([False] * 4 + [True])):
            body = draw(st.one_of(JUNK, DEEP))
        return Call("POST", path, headers, json_body=body)
    content_type = draw(st.sampled_from(["application/json", "multipart/form-data", "multipart/form-data; boundary=x",
                                         "text/plain", "application/x-www-form-urlencoded", "image/png"]))
    return Call("POST", path, {**headers, "Content-Type": content_type}, raw=draw(st.binary(max_size=300)))


@st.composite
def calls(draw) -> Call:
    """One request to any route, with a well-formed or broken body and now and then a hostile header."""
    job = draw(st.one_of(st.sampled_from(["1-abc", "0", "..", "%00", "x" * 300]), st.text(max_size=20)))
    job = requests.utils.quote(job, safe="") or "x"
    call = draw(st.one_of(
        _fill("/api/v1/inpaint"), _fill("/api/v1/jobs"),
        st.sampled_from(["/api/v1/health", "/api/v1/models", "/api/v1/openapi.json"]).map(lambda p: Call("GET", p)),
        st.sampled_from([("GET", f"/api/v1/jobs/{job}"), ("GET", f"/api/v1/jobs/{job}/result"),
                         ("DELETE", f"/api/v1/jobs/{job}")]).map(lambda c: Call(*c)),
        st.builds(Call, st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]),
                  st.sampled_from(["/", "/api", "/api/v1", "/api/v1/inpaint", "/api/v1/jobs", "/api/v2/models", "/%ff"])),
    ))
    extra = draw(st.sampled_from([None] * 17 + ["origin", "host", "authorization"]))
    if extra == "origin":
        call.headers["Origin"] = draw(st.sampled_from(["http://evil.example", "null", "http://127.0.0.1:1"]))
    elif extra == "host":
        call.headers["Host"] = draw(st.sampled_from(["evil.example", "localhost", "[::1]:1", "127.0.0.1:99999", ""]))
    elif extra == "authorization":
        value = draw(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
        call.headers["Authorization"] = value.lstrip()  # requests itself refuses a value starting with a space
    return call


def check(call: Call, r: requests.Response) -> None:
    """What every answer must be: no 5xx, and each error a JSON {"error", "detail"} with reasons."""
    assert r.status_code < 500, (call.method, call.path, r.status_code, r.text[:300])
    if r.status_code >= 400 and call.method != "HEAD":
        assert r.headers.get("Content-Type") == "application/json", (call.method, call.path, r.status_code, r.text[:300])
        body = r.json()
        assert isinstance(body.get("error"), str) and isinstance(body.get("detail"), str) and body["detail"], body
