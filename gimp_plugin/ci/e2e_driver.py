# End-to-end scenarios for the Inpaint Selection plug-in, run inside headless GIMP 3 by gimp3-batch.sh:
#   gimp3-batch.sh CHROOT PROJECT gimp_plugin/plug-ins gimp_plugin/ci/e2e_driver.py INPAINT_URL=http://127.0.0.1:PORT
# Executed by python-fu-eval (Gimp is already imported). Each scenario builds an image, selects a region,
# calls the procedure through the PDB exactly as the menu does, and checks the layers' pixels.
# Any failed check raises at the end, which makes gimp-console exit with 64.
# Env: INPAINT_URL (required), INPAINT_TOKEN_URL (a server started with --token secret-token; the token
#      scenario needs it), INPAINT_E2E_OUT (folder for the exported PNGs), INPAINT_E2E_ONLY (comma list).
import os
import socket
import time
import traceback

import gi

gi.require_version("Gegl", "0.4")
gi.require_version("Gimp", "3.0")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

PROC = "python-fu-inpaint-selection"
URL = os.environ["INPAINT_URL"]
TOKEN_URL = os.environ.get("INPAINT_TOKEN_URL", "")
OUT = os.environ.get("INPAINT_E2E_OUT", "/tmp/inpaint-e2e")
ONLY = [s for s in os.environ.get("INPAINT_E2E_ONLY", "").split(",") if s]
RGBA = "R'G'B'A u8"
RED = (230, 20, 20)
T0 = time.time()


def log(*args):
    print(f"[e2e {time.time() - T0:6.2f}s]", *args, flush=True)


class CheckFailed(AssertionError):
    pass


def check(ok, what):
    if not ok:
        raise CheckFailed(what)


def gradient(w, h, ox=0, oy=0):
    """Smooth RGBA bytes: easy to fill from the border, so a fill can be checked against it."""
    return bytes(v for y in range(h) for x in range(w)
                 for v in ((x + ox) * 255 // 400, (y + oy) * 255 // 300, 128, 255))


def paint_rect(pixels, w, box, rgb):
    """Paint box (x0, y0, x1, y1), in the pixels' own coordinates, opaque rgb."""
    buf = bytearray(pixels)
    for y in range(box[1], box[3]):
        for x in range(box[0], box[2]):
            buf[(y * w + x) * 4:(y * w + x) * 4 + 4] = bytes((*rgb, 255))
    return bytes(buf)


def new_image(w, h, base=Gimp.ImageBaseType.RGB, precision=None):
    if precision is None:
        return Gimp.Image.new(w, h, base)
    return Gimp.Image.new_with_precision(w, h, base, precision)


def add_layer(img, name, w, h, pixels, at=(0, 0), parent=None, kind=Gimp.ImageType.RGBA_IMAGE):
    layer = Gimp.Layer.new(img, name, w, h, kind, 100.0, Gimp.LayerMode.NORMAL)
    img.insert_layer(layer, parent, 0)
    layer.set_offsets(*at)
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), RGBA, pixels)
    buf.flush()
    layer.update(0, 0, w, h)
    return layer


def read(drawable, box):
    """RGBA bytes of box (image coordinates) from a drawable, transparent outside it."""
    _, ox, oy = drawable.get_offsets()
    x0, y0, x1, y1 = box
    return bytes(drawable.get_buffer().get(Gegl.Rectangle.new(x0 - ox, y0 - oy, x1 - x0, y1 - y0), 1.0, RGBA,
                                           Gegl.AbyssPolicy.NONE))


def visible(img, box):
    layer = Gimp.Layer.new_from_visible(img, img, "check")
    try:
        return read(layer, box)
    finally:
        layer.delete()


def bounds(drawable):
    _, x, y = drawable.get_offsets()
    return x, y, x + drawable.get_width(), y + drawable.get_height()


def run_fill(img, drawables, **args):
    """Call the procedure as the menu does (through the PDB); returns (status, new layer or message)."""
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    check(proc is not None, f"{PROC} is not registered: is the plug-in file executable, in NAME/NAME.py?")
    cfg = proc.create_config()
    cfg.set_property("run-mode", args.pop("run_mode", Gimp.RunMode.NONINTERACTIVE))
    cfg.set_property("image", img)
    cfg.set_core_object_array("drawables", drawables)
    args.setdefault("url", URL)
    for key, value in args.items():
        cfg.set_property(key.replace("_", "-"), value)  # GIMP's argument names: sample-width for sample_width
    t = time.time()
    res = proc.run(cfg)
    status = res.index(0)
    log(f"  {PROC} -> {status.value_nick} in {time.time() - t:.2f}s")
    if status == Gimp.PDBStatusType.SUCCESS:
        return status, res.index(1)
    return status, Gimp.get_pdb().get_last_error() if res.length() < 2 else res.index(1)


def fill_error(a, b):
    """Mean absolute difference of two RGB(A) byte strings over RGB."""
    diffs = [abs(a[i] - b[i]) for i in range(len(a)) if i % 4 != 3]
    return sum(diffs) / max(1, len(diffs))


def is_red(px):
    return sum(1 for i in range(0, len(px), 4) if px[i] > 200 and px[i + 1] < 60 and px[i + 2] < 60)


def export(img, name):
    os.makedirs(OUT, exist_ok=True)
    flat = img.duplicate()
    flat.flatten()
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, flat, Gio.File.new_for_path(os.path.join(OUT, name)), None)
    flat.delete()


def _crop(pixels, w, box):
    x0, y0, x1, y1 = box
    return b"".join(pixels[(y * w + x0) * 4:(y * w + x1) * 4] for y in range(y0, y1))


def children(img, parent=None):
    return [item.get_name() for item in (parent.get_children() if parent else img.get_layers())]


# ---- scenarios ------------------------------------------------------------------------------------------

def basic():
    """One rectangle on one layer: new layer above, alpha exactly the selection, the source untouched."""
    w, h, sel = 256, 192, (64, 48, 164, 112)
    img = new_image(w, h)
    clean = gradient(w, h)
    base = add_layer(img, "base", w, h, paint_rect(clean, w, sel, RED))
    img.select_rectangle(Gimp.ChannelOps.REPLACE, sel[0], sel[1], sel[2] - sel[0], sel[3] - sel[1])
    before = read(base, (0, 0, w, h))
    export(img, "basic_before.png")
    status, layer = run_fill(img, [base], grow=0, feather=0)
    check(status == Gimp.PDBStatusType.SUCCESS, f"status {status}: {layer}")
    check(read(base, (0, 0, w, h)) == before, "the source layer changed")
    check(children(img) == ["base (inpainted)", "base"], f"layers {children(img)}")
    check(bounds(layer) == sel, f"new layer bounds {bounds(layer)} != selection {sel}")
    px = read(layer, sel)
    check(all(px[i] == 255 for i in range(3, len(px), 4)), "the new layer is not opaque inside the selection")
    check(is_red(px) == 0, f"{is_red(px)} red pixels left in the fill")
    err = fill_error(px, _crop(clean, w, sel))
    check(err < 20, f"fill differs from the hidden gradient by {err:.1f} on average")
    outside = read(layer, (0, 0, w, h))
    check(sum(outside[3::4]) == 255 * (sel[2] - sel[0]) * (sel[3] - sel[1]), "alpha outside the selection")
    Gimp.Selection.none(img)
    export(img, "basic_after.png")
    log(f"  fill error vs hidden gradient {err:.1f}")
    img.delete()


def offsets_and_two_regions():
    """A small layer with offsets and two separate selected areas: both filled, in one new layer."""
    w, h = 400, 300
    img = new_image(w, h)
    add_layer(img, "background", w, h, bytes((250, 250, 250, 255)) * (w * h))
    lx, ly, lw, lh = 40, 30, 320, 240
    areas = [(60, 50, 84, 74), (300, 220, 340, 250)]  # image coordinates, far apart
    clean = gradient(lw, lh, lx, ly)
    pixels = clean
    for a in areas:
        pixels = paint_rect(pixels, lw, (a[0] - lx, a[1] - ly, a[2] - lx, a[3] - ly), RED)
    patch = add_layer(img, "patch", lw, lh, pixels, at=(lx, ly))
    img.select_rectangle(Gimp.ChannelOps.REPLACE, areas[0][0], areas[0][1], 24, 24)
    img.select_rectangle(Gimp.ChannelOps.ADD, areas[1][0], areas[1][1], 40, 30)
    before = read(patch, bounds(patch))
    status, layer = run_fill(img, [patch], grow=0, feather=0, context=16)
    check(status == Gimp.PDBStatusType.SUCCESS, f"status {status}: {layer}")
    check(read(patch, bounds(patch)) == before, "the source layer changed")
    check(children(img) == ["patch (inpainted)", "patch", "background"], f"layers {children(img)}")
    check(bounds(layer) == (60, 50, 340, 250), f"new layer bounds {bounds(layer)}")
    for a in areas:
        px = read(layer, a)
        hidden = _crop(clean, lw, (a[0] - lx, a[1] - ly, a[2] - lx, a[3] - ly))
        check(is_red(px) == 0 and all(v == 255 for v in px[3::4]), f"area {a} not filled")
        err = fill_error(px, hidden)
        check(err < 20, f"area {a}: fill error {err:.1f}")
        log(f"  area {a}: fill error {err:.1f}")
    gap = read(layer, (100, 100, 280, 200))
    check(not any(gap[3::4]), "pixels between the two areas are not transparent")
    img.delete()


def group_and_text_visible():
    """A layer group and a text layer as the active item, filled from the visible image."""
    w, h, sel = 240, 160, (90, 50, 150, 100)
    img = new_image(w, h)
    clean = gradient(w, h)
    add_layer(img, "base", w, h, clean)
    group = Gimp.GroupLayer.new(img, "group")
    img.insert_layer(group, None, 0)
    inner = add_layer(img, "red", sel[2] - sel[0], sel[3] - sel[1], bytes((*RED, 255)) * 3000, at=sel[:2],
                      parent=group)
    inner_before = read(inner, bounds(inner))
    img.select_rectangle(Gimp.ChannelOps.REPLACE, sel[0], sel[1], sel[2] - sel[0], sel[3] - sel[1])

    status, message = run_fill(img, [group], grow=0, feather=0, source="layer")
    check(status == Gimp.PDBStatusType.EXECUTION_ERROR and "group" in str(message), f"group as layer: {message}")
    log(f"  group with source=layer refused: {message}")

    status, layer = run_fill(img, [group], grow=0, feather=0, source="visible")
    check(status == Gimp.PDBStatusType.SUCCESS, f"status {status}: {layer}")
    check(children(img) == ["group (inpainted)", "group", "base"], f"layers {children(img)}")
    check(read(inner, bounds(inner)) == inner_before, "the layer inside the group changed")
    err = fill_error(visible(img, sel), _crop(clean, w, sel))
    check(err < 20, f"visible fill error {err:.1f}")
    log(f"  group: visible fill error {err:.1f}")

    text = Gimp.TextLayer.new(img, "INPAINT", Gimp.context_get_font(), 28.0, Gimp.Unit.pixel())
    img.insert_layer(text, None, 0)
    text.set_offsets(sel[0] - 10, sel[1])
    status, layer = run_fill(img, [text], grow=0, feather=0, source="visible")
    check(status == Gimp.PDBStatusType.SUCCESS, f"status {status}: {layer}")
    check(text.is_text_layer(), "the text layer lost its text")
    check(children(img)[:2] == ["INPAINT (inpainted)", "INPAINT"], f"layers {children(img)}")
    log(f"  text layer kept, layers {children(img)}")
    img.delete()


def high_bit_depth_and_grey():
    """16-bit and float RGB and 8-bit grey images are read as 8-bit and get a layer of their own type."""
    cases = [("u16", Gimp.ImageBaseType.RGB, Gimp.Precision.U16_NON_LINEAR, Gimp.ImageType.RGBA_IMAGE),
             ("float", Gimp.ImageBaseType.RGB, Gimp.Precision.FLOAT_LINEAR, Gimp.ImageType.RGBA_IMAGE),
             ("grey", Gimp.ImageBaseType.GRAY, None, Gimp.ImageType.GRAYA_IMAGE)]
    w, h, sel = 200, 150, (70, 50, 120, 90)
    for name, base_type, precision, kind in cases:
        img = new_image(w, h, base_type, precision)
        layer = add_layer(img, name, w, h, paint_rect(gradient(w, h), w, sel, RED), kind=kind)
        img.select_rectangle(Gimp.ChannelOps.REPLACE, sel[0], sel[1], sel[2] - sel[0], sel[3] - sel[1])
        status, new = run_fill(img, [layer], grow=0, feather=0)
        check(status == Gimp.PDBStatusType.SUCCESS, f"{name}: status {status}: {new}")
        check(new.get_image().get_precision() == img.get_precision(), f"{name}: precision")
        check(is_red(visible(img, sel)) == 0, f"{name}: red left")
        log(f"  {name}: ok, new layer {bounds(new)} type {new.type().value_nick}")
        img.delete()


def no_selection():
    img = new_image(64, 64)
    layer = add_layer(img, "base", 64, 64, gradient(64, 64))
    status, message = run_fill(img, [layer])
    check(status == Gimp.PDBStatusType.EXECUTION_ERROR, f"status {status}")
    check("Nothing is selected" in str(message), f"message {message!r}")
    check(children(img) == ["base"], "a layer was added")
    log(f"  message: {message}")
    img.delete()


def backend_down():
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    img = new_image(64, 64)
    layer = add_layer(img, "base", 64, 64, gradient(64, 64))
    img.select_rectangle(Gimp.ChannelOps.REPLACE, 10, 10, 20, 20)
    status, message = run_fill(img, [layer], url=f"http://127.0.0.1:{port}")
    check(status == Gimp.PDBStatusType.EXECUTION_ERROR, f"status {status}")
    check("not running" in str(message), f"message {message!r}")
    check(children(img) == ["base"], "a layer was added")
    log(f"  message: {message}")
    img.delete()


def token():
    """A server started with --token: refused without it, in words; filled with it."""
    check(TOKEN_URL, "INPAINT_TOKEN_URL is not set")
    img = new_image(64, 64)
    layer = add_layer(img, "base", 64, 64, gradient(64, 64))
    img.select_rectangle(Gimp.ChannelOps.REPLACE, 10, 10, 20, 20)
    status, message = run_fill(img, [layer], url=TOKEN_URL)
    check(status == Gimp.PDBStatusType.EXECUTION_ERROR and "same token" in str(message), f"no token: {message}")
    log(f"  without: {message}")
    status, new = run_fill(img, [layer], url=TOKEN_URL, token="secret-token")
    check(status == Gimp.PDBStatusType.SUCCESS, f"with token: {new}")
    # Filters > Repeat runs with last values; the token comes from the plug-in's private file then.
    token_file = os.path.join(Gimp.directory(), "inpaint-selection", "token")
    os.makedirs(os.path.dirname(token_file), exist_ok=True)
    with open(token_file, "w") as f:
        f.write("secret-token")
    try:
        status, new = run_fill(img, [layer], url=TOKEN_URL, run_mode=Gimp.RunMode.WITH_LAST_VALS)
    finally:
        os.remove(token_file)
    check(status == Gimp.PDBStatusType.SUCCESS, f"repeat with the stored token: {new}")
    img.delete()


def sampling_area():
    """Red above and below the selection, the gradient beside it: the control (sampled from everywhere) copies
    red in; sampling from the sides, or from a saved channel over them, keeps it out."""
    w, h, sel = 160, 112, (60, 40, 100, 70)
    img = new_image(w, h)
    pixels = paint_rect(paint_rect(gradient(w, h), w, (0, 0, w, 40), RED), w, (0, 70, w, h), RED)
    base = add_layer(img, "base", w, h, pixels)
    img.select_rectangle(Gimp.ChannelOps.REPLACE, 20, 40, 120, 30)  # the rows beside the selection
    channel = Gimp.Selection.save(img)
    channel.set_name("beside")
    img.select_rectangle(Gimp.ChannelOps.REPLACE, sel[0], sel[1], sel[2] - sel[0], sel[3] - sel[1])
    reds = {}
    for key, args in (("whole", {"sample": "whole"}), ("sides", {"sample": "sides", "sample_width": 30}),
                      ("channel", {"sample": "channel", "sample_channel": "beside"})):
        status, layer = run_fill(img, [base], grow=0, feather=0, model="patchmatch", **args)
        check(status == Gimp.PDBStatusType.SUCCESS, f"{key}: status {status}: {layer}")
        check(children(img) == ["base (inpainted)", "base"], f"{key}: layers {children(img)}")
        reds[key] = is_red(read(layer, sel))
        img.remove_layer(layer)
    log(f"  red pixels in the fill: {reds}")
    check(reds["whole"] > 50, f"the control copied only {reds['whole']} red pixels: the scene tests nothing")
    check(reds["sides"] == 0 and reds["channel"] == 0, f"red copied from outside the sampling area: {reds}")
    img.delete()


def transparent_frame():
    """A layer with a transparent frame on all four sides and nothing selected: every frame pixel is filled,
    each side in the colours of the picture's edge beside it."""
    w, h, f = 128, 96, 12
    img = new_image(w, h)
    inner = gradient(w - 2 * f, h - 2 * f, f, f)
    clear = bytes(w * h * 4)
    rows = [clear[:w * 4] if y < f or y >= h - f else
            bytes(f * 4) + inner[(y - f) * (w - 2 * f) * 4:(y - f + 1) * (w - 2 * f) * 4] + bytes(f * 4)
            for y in range(h)]
    base = add_layer(img, "base", w, h, b"".join(rows))
    Gimp.Selection.none(img)
    status, layer = run_fill(img, [base], grow=0, feather=0, fill_transparent=True)
    check(status == Gimp.PDBStatusType.SUCCESS, f"status {status}: {layer}")
    check(children(img) == ["base (inpainted)", "base"], f"layers {children(img)}")
    check(bounds(layer) == (0, 0, w, h), f"new layer bounds {bounds(layer)}")
    for side, box, edge in (("top", (f, 0, w - f, f), (f, f, w - f, 2 * f)),
                            ("bottom", (f, h - f, w - f, h), (f, h - 2 * f, w - f, h - f)),
                            ("left", (0, f, f, h - f), (f, f, 2 * f, h - f)),
                            ("right", (w - f, f, w, h - f), (w - 2 * f, f, w - f, h - f))):
        px, near = read(layer, box), read(base, edge)
        check(all(v == 255 for v in px[3::4]), f"{side}: transparent pixels left in the frame")
        mean = [sum(px[c::4]) / (len(px) // 4) for c in range(3)]
        want = [sum(near[c::4]) / (len(near) // 4) for c in range(3)]
        off = max(abs(a - b) for a, b in zip(mean, want))
        check(off < 30, f"{side}: mean colour {mean} is {off:.0f} off the picture's edge beside it {want}")
        log(f"  {side}: filled, {off:.1f} off the edge beside it")
    inside = read(layer, (f, f, w - f, h - f))
    check(not any(inside[3::4]), "the new layer covers the picture too")
    img.delete()


def variations_and_compare():
    """Three variations: three layers named by consecutive seeds; compare: one layer per model; one undo each."""
    w, h, sel = 160, 112, (60, 40, 100, 70)
    img = new_image(w, h)
    base = add_layer(img, "base", w, h, paint_rect(gradient(w, h), w, sel, RED))
    img.select_rectangle(Gimp.ChannelOps.REPLACE, sel[0], sel[1], sel[2] - sel[0], sel[3] - sel[1])
    status, top = run_fill(img, [base], grow=0, feather=0, model="patchmatch", variations=3, seed=-1)
    check(status == Gimp.PDBStatusType.SUCCESS, f"variations: status {status}: {top}")
    names = children(img)
    check(len(names) == 4 and names[-1] == "base" and names[0] == top.get_name(), f"layers {names}")
    seeds = [int(n.rsplit(" ", 1)[1].rstrip(")")) for n in names[:3]]
    check(names[:3] == [f"base (inpainted, patchmatch seed {s})" for s in seeds], f"names {names}")
    check(seeds == [seeds[0] + i for i in range(3)], f"seeds {seeds}")
    for layer in img.get_layers()[:3]:
        check(is_red(read(layer, sel)) == 0 and bounds(layer) == sel, f"{layer.get_name()}: not a fill")
    log(f"  variations: {names[:3]}")
    for layer in img.get_layers()[:3]:
        img.remove_layer(layer)
    status, top = run_fill(img, [base], grow=0, feather=0, compare="patchmatch,diffusion")
    check(status == Gimp.PDBStatusType.SUCCESS, f"compare: status {status}: {top}")
    check(children(img) == ["base (inpainted, patchmatch)", "base (inpainted, diffusion)", "base"],
          f"compare: layers {children(img)}")
    for layer in img.get_layers()[:2]:
        check(is_red(read(layer, sel)) == 0, f"{layer.get_name()}: red left")
    log(f"  compare: {children(img)[:2]}")
    img.delete()


def killed_mid_job():
    """Only on request: the host kills the plug-in while its job runs, as GIMP's Cancel button does."""
    img = new_image(64, 64)
    layer = add_layer(img, "base", 64, 64, gradient(64, 64))
    img.select_rectangle(Gimp.ChannelOps.REPLACE, 10, 10, 20, 20)
    log("  waiting to be killed")
    status, message = run_fill(img, [layer])
    check(status != Gimp.PDBStatusType.SUCCESS, f"status {status}")
    check(children(img) == ["base"], "a layer was added")
    log(f"  message: {message}")
    img.delete()


SCENARIOS = [basic, offsets_and_two_regions, group_and_text_visible, high_bit_depth_and_grey, no_selection,
             backend_down, token, sampling_area, transparent_frame, variations_and_compare]
ON_REQUEST = [killed_mid_job]  # needs the host's help (tests/test_gimp_e2e.py)

log(f"GIMP {Gimp.version()} driver, backend {URL}")
failed = []
for scenario in SCENARIOS + ON_REQUEST:
    if (ONLY or [f.__name__ for f in SCENARIOS]).count(scenario.__name__) == 0:
        continue
    log(f"{scenario.__name__}: {scenario.__doc__ or ''}".strip())
    try:
        scenario()
        log(f"PASS {scenario.__name__}")
    except Exception as e:
        traceback.print_exc()
        log(f"FAIL {scenario.__name__}: {e}")
        failed.append(scenario.__name__)
if failed:
    raise SystemExit(f"e2e failed: {', '.join(failed)}")
log("E2E OK")
