"""The `inpaint-backend` command: serve the API, or fill images from the shell."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}

# torch's OpenMP workers busy-wait (libgomp: 300000 spins) after every parallel operation. Engines such as
# PatchMatch run thousands of small operations, so on a machine whose cores are busy the spinning workers
# take the CPU from the thread doing the work: a CLI fill took 20 s instead of 0.4 s. Sleeping workers cost
# microseconds per operation. libgomp reads this when torch loads, so it is set before anything imports
# torch; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _add_fill_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="engine or checkpoint id (default: the default engine)")
    p.add_argument("--grow", type=int, default=0, help="px to grow the selection by")
    p.add_argument("--feather", type=int, default=0, help="px of soft edge")
    p.add_argument("--context", default="auto", help="px of surrounding image the model sees, or auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blend", choices=["alpha", "poisson"], default="alpha")
    p.add_argument("--output", choices=["image", "layer"], default="image",
                   help="image: the composite (default); layer: RGBA with only the filled pixels")
    p.add_argument("--source", type=Path, default=None, metavar="MASK",
                   help="sampling area: patchmatch copies only from where this image-sized mask is white")
    p.add_argument("--source-preset", choices=["around", "sides", "above_below"], default=None,
                   help="sampling area: known pixels within --source-width of the hole, all around it, only left "
                        "and right of it, or only above and below it (with --source: both must hold)")
    p.add_argument("--source-width", type=int, default=50, help="px, the band of --source-preset (default 50)")
    p.add_argument("--fill-transparent", action="store_true",
                   help="fill the image's fully transparent pixels too (MASK may then be left out)")


def _add_cpu_bf16(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cpu-bf16", default="auto", choices=["auto", "on", "off"],
                   help="learned engines on a CPU in bfloat16 (auto: where the CPU has it natively, AVX512-BF16/AMX)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inpaint-backend", description="Local inpainting backend for Krita and GIMP.")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the HTTP API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    _add_cpu_bf16(s)
    s.add_argument("--models-dir", default="models", help="folder of checkpoints (default: ./models)")
    s.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' (needed off loopback)")
    s.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="another name clients may reach the server by (Host header), e.g. the machine's DNS name; "
                        "loopback names and --host are always allowed (repeatable)")
    s.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web page origin allowed to call the API, e.g. http://localhost:3000 (repeatable; "
                        "default: none, requests carrying any Origin are refused)")
    s.add_argument("--max-pixels", type=float, default=100e6, help="largest image accepted, in pixels")
    s.add_argument("--max-upload-mb", type=int, default=512)
    s.add_argument("--max-queued-pixels", type=float, default=64e6,
                   help="pixels that queued and running jobs may hold; past it new work gets 429 (one job always fits)")
    s.add_argument("--max-waiting-fills", type=int, default=8,
                   help="synchronous /inpaint calls waiting at once; past it they get 429 (POST /api/v1/jobs queues instead)")
    s.add_argument("--max-job-seconds", type=float, default=600, help="a job running longer ends with an error (0: no limit)")
    s.add_argument("--idle-timeout", type=int, default=15, help="seconds before an idle connection is closed")

    f = sub.add_parser("fill", help="fill IMAGE where MASK is white; IMAGE and MASK may be folders")
    f.add_argument("image", type=Path, help="image file, or a folder of images")
    f.add_argument("mask", type=Path, nargs="?", default=None,
                   help="mask file (used for every image), or a folder of masks matched by name; "
                        "optional with --fill-transparent")
    f.add_argument("-o", "--out", type=Path, required=True, help="output PNG, or a folder when IMAGE is a folder")
    f.add_argument("--variations", type=int, default=1, choices=range(1, 9), metavar="N",
                   help="N fills (1-8) with seeds --seed, --seed+1, ..., each written as OUT-seedS.png")
    f.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    _add_cpu_bf16(f)
    f.add_argument("--models-dir", default="models")
    _add_fill_options(f)

    t = sub.add_parser("train", help="train a learned method on a folder of photos")
    t.add_argument("--method", required=True, help="cisi, imt, isnet, nfgan or semantic")
    t.add_argument("--data", type=Path, required=True, help="folder of photos (searched recursively)")
    t.add_argument("--recipe", default=None, help="the method's recipe (default: paper)")
    t.add_argument("--size", type=int, default=None, help="training crop size (default: the recipe's)")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--batch", type=int, default=None)
    t.add_argument("--out", type=Path, default=None, help="checkpoint name, e.g. models/my-isnet (default: models/<method>-custom)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--init-from", type=Path, default=None, metavar="CHECKPOINT",
                   help="start a new run from a served checkpoint's weights and config (e.g. models/isnet-open."
                        "safetensors), with fresh optimisers and a learning-rate warm-up: when the run's state is gone")
    t.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    t.add_argument("--half", action="store_true", help="export the served checkpoint in half precision")
    t.add_argument("--debug", action="store_true", help="show the traceback of an error")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any recipe value, e.g. --set lr=1e-4 --set val_every=200 (JSON values)")

    su = sub.add_parser("setup-training", help="install the feature networks training reads (pip) and fetch "
                                               "torchvision's VGG19 for the paper recipes")
    su.add_argument("--no-download", action="store_true", help="install the offline networks only")

    e = sub.add_parser("eval", help="score engines on fixed masks per hole-ratio bucket")
    e.add_argument("--models", required=True,
                   help="comma-separated engine/checkpoint ids; external baselines: telea, ns, biharmonic, pypatchmatch, gmic")
    e.add_argument("--data", type=Path, required=True, help="folder of test photos (never ones trained on)")
    e.add_argument("--out", type=Path, default=Path("eval"), help="where eval.md, eval.json and eval_grid.png go")
    e.add_argument("--size", type=int, default=512, help="photos are centre-cropped and resized to this square")
    e.add_argument("--max-photos", type=int, default=None)
    e.add_argument("--seed", type=int, default=0, help="mask seed: the same seed gives the same masks")
    e.add_argument("--buckets", default=None,
                   help="comma-separated mask buckets (default: the strokes and blobs buckets; also 'centre 1/9', "
                        "'boxes 5-20%%' and Yeh et al.'s 'centre 1/4', 'pattern 25%%', 'pixels 80%%', 'half')")
    e.add_argument("--option", action="append", default=[], metavar="ENGINE:KEY=VALUE",
                   help="an engine option, e.g. --option semantic-small:iterations=300 (repeatable)")
    e.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    e.add_argument("--models-dir", default="models")
    e.add_argument("--into-cards", action="store_true",
                   help="write the table into the card of each checkpoint scored, so the editors show how it did")

    ic = sub.add_parser("import-checkpoint", help="convert a method's official weights into a served checkpoint")
    ic.add_argument("--method", required=True, help="the method the file belongs to, e.g. isnet")
    ic.add_argument("file", type=Path, help="the official weights file, e.g. InpaintingModel_gen.pth for isnet")
    ic.add_argument("--out", type=Path, default=None, help="checkpoint name (default: models/<method>-official)")

    st = sub.add_parser("style-transfer", help="render a content image with a style image's neural patches "
                                               "(an Infer-Match-Translate checkpoint's Feature2Image)")
    st.add_argument("--model", required=True, help="an imt checkpoint in --models-dir")
    st.add_argument("--content", type=Path, required=True)
    st.add_argument("--style", type=Path, required=True)
    st.add_argument("--out", type=Path, required=True, help="the result (PNG)")
    st.add_argument("--size", type=int, default=512, help="longer side both images are scaled to, at most")
    st.add_argument("--models-dir", default="models")
    st.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])

    pp = sub.add_parser("prepare-photos", help="collect the open photo set into train, val and test splits")
    pp.add_argument("--out", type=Path, default=Path("data/open-photos"))
    pp.add_argument("--max-side", type=int, default=2048, help="downscale larger photos to this long side")

    i = sub.add_parser("install-plugins", help="copy the editor plugins into your Krita and/or GIMP profile")
    i.add_argument("--krita", action="store_true", help="install and enable the Krita plugin")
    i.add_argument("--gimp", action="store_true", help="install the GIMP 3 plug-in (3.0 and 3.2 profiles)")
    i.add_argument("--dest", type=Path, default=None, help="install into this folder instead of the profile")
    return parser


def _pairs(image: Path, mask: Path | None, out: Path) -> list[tuple[Path, Path | None, Path]]:
    if not image.is_dir():
        return [(image, mask, out)]
    images = sorted(p for p in image.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    pairs = []
    for img in images:
        if mask is not None and mask.is_dir():
            candidates = [mask / f"{img.stem}{s}" for s in (".png", "_mask.png", img.suffix)]
            m = next((c for c in candidates if c.is_file()), None)
            if m is None:
                print(f"skipping {img.name}: no mask named {img.stem}.png or {img.stem}_mask.png in {mask}", file=sys.stderr)
                continue
        else:
            m = mask
        pairs.append((img, m, out / f"{img.stem}.png"))
    return pairs


def run_fill(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from backend.api.errors import classify
    from backend.engines.base import Progress
    from backend.images import ImageError, decode_image, decode_mask, encode_png
    from backend.request import Blend, FillRequest, Output, SourcePreset
    from backend.service import ServerConfig, Service

    if args.mask is None and not args.fill_transparent:
        print("error: MASK is required (unless --fill-transparent)", file=sys.stderr)
        return 2

    service = Service(ServerConfig(models_dir=Path(args.models_dir), device=args.device))
    try:
        model = service.check_model(args.model)
    except Exception as e:  # noqa: BLE001 - report the reason, not a traceback
        print(f"error: {classify(e).detail}", file=sys.stderr)
        return 2
    pairs = _pairs(args.image, args.mask, args.out)
    if args.image.is_dir():
        args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    bar = tqdm(pairs, unit="img", disable=len(pairs) < 2)
    for img_path, mask_path, out_path in bar:
        bar.set_postfix_str(img_path.name)
        try:
            image = decode_image(img_path.read_bytes(), service.config.max_pixels, str(img_path))
            limit = service.config.max_pixels
            mask = np.zeros(image.shape[:2], np.float32) if mask_path is None else \
                decode_mask(mask_path.read_bytes(), limit, str(mask_path))
            source = None if args.source is None else decode_mask(args.source.read_bytes(), limit, str(args.source))
            for what, arr in (("mask", mask), ("source", source)):
                if arr is not None and image.shape[:2] != arr.shape:
                    raise ImageError("size_mismatch", f"{img_path.name} is {image.shape[1]}x{image.shape[0]}, "
                                                      f"{what} {arr.shape[1]}x{arr.shape[0]}")
            for seed in range(args.seed, args.seed + args.variations):
                req = FillRequest(image, mask, model, Output(args.output), args.grow, args.feather,
                                  None if args.context == "auto" else int(args.context), seed, Blend(args.blend),
                                  source=source, source_width=args.source_width, fill_transparent=args.fill_transparent,
                                  source_preset=SourcePreset(args.source_preset) if args.source_preset else None)
                result = service.fill(req, Progress())
                path = out_path if args.variations == 1 else out_path.with_name(f"{out_path.stem}-seed{seed}.png")
                path.write_bytes(encode_png(result.pixels, compression=6))
        except OSError as e:
            failures += 1
            print(f"error: {img_path}: {e}", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - one bad file must not stop a batch
            failures += 1
            print(f"error: {img_path.name}: {classify(e).detail}", file=sys.stderr)
    return 1 if failures else 0


def _parse_set(items: list[str], flag: str = "--set") -> dict:
    import json

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{flag} wants KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def run_train(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    from backend.methods import get_method
    from backend.training.trainer import TrainOptions, train

    try:
        get_method(args.method)
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    from backend.training.features import FeatureWeightsMissing

    if not args.data.is_dir():
        print(f"error: --data {args.data}: no such folder", file=sys.stderr)
        return 2
    overrides = {"size": args.size, "steps": args.steps, "batch": args.batch, **_parse_set(args.set)}
    out = args.out or Path("models") / f"{args.method}-custom"
    try:
        result = train(TrainOptions(args.method, args.data, out, args.recipe, overrides, args.resume, args.device, args.half,
                                    args.init_from))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the trainer has saved the step it was at
        if os.environ.get("RANK", "0") == "0":
            latest = out.with_name(out.name + ".train") / "latest.json"
            step = json.loads(latest.read_text())["step"] if latest.is_file() else 0
            again = " ".join(a for a in (argv or sys.argv[1:]) if a != "--resume")
            print(f"saved step {step}; resume with: inpaint-backend {again} --resume", file=sys.stderr)
        return 130
    except (FeatureWeightsMissing, ValueError, SystemExit) as e:  # the user's to fix: one line, no traceback
        if args.debug or isinstance(e, SystemExit) and not isinstance(e.code, str):
            raise
        print(f"error: {e.code if isinstance(e, SystemExit) else e}", file=sys.stderr)
        return 2
    skipped = f", {result['unreadable']} unreadable photo(s) skipped" if result.get("unreadable") else ""
    print(f"done: step {result['step']}, validation {result['metrics']}, served as {result['export']}{skipped}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from backend.engines.registry import Registry
    from backend.service import pick_device
    from backend.training.evaluate import run_eval as evaluate
    from backend.training.masks import ALL_BUCKETS

    buckets = [b.strip() for b in args.buckets.split(",") if b.strip()] if args.buckets else None
    unknown = [b for b in buckets or [] if b not in ALL_BUCKETS]
    if unknown:
        print(f"error: unknown bucket(s) {', '.join(unknown)} (known: {', '.join(ALL_BUCKETS)})", file=sys.stderr)
        return 2
    options: dict[str, dict] = {}
    for item in args.option:
        engine, sep, setting = item.partition(":")
        if not sep:
            print(f"error: --option wants ENGINE:KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        options.setdefault(engine, {}).update(_parse_set([setting], "--option"))
    registry = Registry(args.models_dir, pick_device(args.device))
    try:
        result = evaluate([m.strip() for m in args.models.split(",") if m.strip()], args.data, args.out, registry,
                          args.size, args.max_photos, buckets=buckets, seed=args.seed, options=options)
    except ValueError as e:  # unknown engine options or values
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result["markdown"])
    print(f"written: {args.out / 'eval.md'}, {args.out / 'eval.json'}, {args.out / 'eval_grid.png'}")
    if args.into_cards:
        from backend.training.evaluate import into_cards

        for card in into_cards(result, registry):
            print(f"eval table written into {card}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from backend.methods import get_method

    try:
        importer = getattr(get_method(args.method), "import_checkpoint", None)
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    if importer is None:
        print(f"error: method '{args.method}' has no official weights to import", file=sys.stderr)
        return 2
    try:
        written = importer(args.file, args.out or Path("models") / f"{args.method}-official")
    except (OSError, ValueError) as e:  # a wrong or unreadable file: say why, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"imported {args.file} as {written}")
    return 0


def run_style_transfer(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from backend.api.errors import classify
    from backend.engines.region import quantize, to_float
    from backend.engines.registry import Registry
    from backend.images import ImageError, decode_image, encode_png
    from backend.service import pick_device

    try:
        engine = Registry(args.models_dir, pick_device(args.device)).get(args.model)
    except Exception as e:  # noqa: BLE001 - report the reason, not a traceback
        print(f"error: {classify(e).detail}", file=sys.stderr)
        return 2
    model = getattr(engine, "model", None)
    if not hasattr(model, "transfer_style"):
        print(f"error: '{args.model}' is not an Infer-Match-Translate (imt) checkpoint", file=sys.stderr)
        return 2

    def load(path: Path) -> torch.Tensor:
        pixels = decode_image(path.read_bytes(), 2**28, str(path))[..., :3]
        x = torch.from_numpy(to_float(pixels)).permute(2, 0, 1)[None].to(engine.device)
        scale = min(1.0, args.size / max(x.shape[-2:]))
        size = (max(16, round(x.shape[-2] * scale)), max(16, round(x.shape[-1] * scale)))
        return F.interpolate(x, size=size, mode="area") if size != tuple(x.shape[-2:]) else x

    try:
        content, style = load(args.content), load(args.style)
    except (OSError, ImageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with torch.no_grad():
        out = model.transfer_style(content, style)[0].permute(1, 2, 0).cpu().numpy()
    args.out.write_bytes(encode_png(quantize(out, np.uint8)))
    print(f"written: {args.out} ({out.shape[1]}x{out.shape[0]})")
    return 0


def run_install(args: argparse.Namespace) -> int:
    import importlib

    editors = [name for name in ("krita", "gimp") if getattr(args, name)]
    if not editors:
        print("error: say which editor: --krita, --gimp or both", file=sys.stderr)
        return 2
    for name in editors:
        try:
            installer = importlib.import_module(f"backend.install.{name}")
        except ModuleNotFoundError:
            print(f"error: the {name} plugin is not part of this version", file=sys.stderr)
            return 2
        try:
            written = installer.install(args.dest)
        except SystemExit as e:  # this installation lacks the plugin's files
            print(f"error: {e.code}", file=sys.stderr)
            return 2
        for path in written:
            print(f"{name}: installed {path}")
        for note in getattr(installer, "python_environment_notes", list)():
            print(f"{name}: note: {note}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "cpu_bf16", None):
        from backend import compute

        compute.set_serving_cpu_bf16(args.cpu_bf16)
    if args.command == "serve":
        from backend.app import serve
        from backend.service import ServerConfig

        config = ServerConfig(models_dir=Path(args.models_dir), device=args.device, token=args.token,
                              max_pixels=int(args.max_pixels), max_upload_mb=args.max_upload_mb, host=args.host,
                              allowed_hosts=tuple(args.allowed_host), allowed_origins=tuple(args.allowed_origin),
                              max_queued_pixels=int(args.max_queued_pixels), max_waiting_fills=args.max_waiting_fills,
                              max_job_seconds=args.max_job_seconds or None, idle_timeout=args.idle_timeout)
        try:
            serve(config, port=args.port)
        except ValueError as e:  # e.g. --device cuda without a GPU
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if args.command == "fill":
        return run_fill(args)
    if args.command == "train":
        return run_train(args, argv)
    if args.command == "setup-training":
        from backend.training.setup import setup_training

        return setup_training(download=not args.no_download)
    if args.command == "eval":
        return run_eval(args)
    if args.command == "import-checkpoint":
        return run_import(args)
    if args.command == "prepare-photos":
        from backend.training.photos import prepare

        counts = prepare(args.out, args.max_side)
        print(f"{args.out}: {counts['train']} train, {counts['val']} val, {counts['test']} test photos (see ATTRIBUTION.md)")
        return 0 if counts["train"] and counts["val"] else 1
    if args.command == "install-plugins":
        return run_install(args)
    if args.command == "style-transfer":
        return run_style_transfer(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
