#!/usr/bin/env python3
"""GIMP 3 plug-in: Filters > Enhance > Inpaint Selection…

The only module that calls libgimp (and GimpUi). It reads the selection and the pixels around it,
hands them to a FillJob thread that talks to the backend, and puts the result into a new layer above
the source. Everything else lives in the GIMP-free modules beside this file.
"""
import secrets
import sys
import traceback
from dataclasses import replace
from pathlib import Path

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402

from backend_client import Backend, BackendError, model_note  # noqa: E402
from fill_job import Crop, FillJob  # noqa: E402
from fill_settings import (  # noqa: E402
    DEFAULT_URL,
    MAX_SEED,
    MAX_VARIATIONS,
    FillSettings,
    SampleFrom,
    Source,
    layer_name,
    load_token,
    over_half,
    save_token,
)
from job_watchdog import Watchdog  # noqa: E402
from selection_geometry import area_boxes, crop_boxes, offset, union  # noqa: E402

PROC = "python-fu-inpaint-selection"
RGBA, GREY = "R'G'B'A u8", "Y u8"  # primed: sRGB-encoded bytes, what PNG files hold
RW = GObject.ParamFlags.READWRITE

NO_SELECTION = ("Nothing is selected. Select the area to fill (for example with the Free Select tool), "
                "then run Filters > Enhance > Inpaint Selection again.")
ONE_LAYER = "Select exactly one layer in the Layers dock (or choose Source: Visible image)."


class UserError(Exception):
    """A problem the user fixes in GIMP; its message is shown as is."""


def _rect(box):
    x0, y0, x1, y1 = box
    return Gegl.Rectangle.new(x0, y0, x1 - x0, y1 - y0)


def read_selection(image, box) -> bytes:
    return bytes(image.get_selection().get_buffer().get(_rect(box), 1.0, GREY, Gegl.AbyssPolicy.NONE))


def read_pixels(drawable, box) -> bytes:
    """`box` in image coordinates; outside the drawable (layers can be small or offset) reads transparent."""
    _, ox, oy = drawable.get_offsets()
    return bytes(drawable.get_buffer().get(_rect(offset(box, -ox, -oy)), 1.0, RGBA, Gegl.AbyssPolicy.NONE))


def read_channel(image, name: str, box) -> bytes:
    """The saved channel `name` over `box`, as a 0/255 sampling area."""
    channel = image.get_channel_by_name(name)
    if channel is None:
        raise UserError(f"There is no saved channel named '{name}' to sample from. Select the area to copy "
                        "from, Select > Save to Channel, and type that channel's name.")
    area = over_half(bytes(channel.get_buffer().get(_rect(box), 1.0, GREY, Gegl.AbyssPolicy.NONE)))
    if not any(area):
        raise UserError(f"The channel '{name}' covers nothing near the selection: it must cover, more than half "
                        "white, some of the area the fill sees (the selection and its context).")
    return area


def read_crops(image, drawable, settings: FillSettings) -> list[Crop]:
    if settings.fill_transparent:
        # The transparent pixels may be anywhere (canvas extension: along the borders, or outside a layer
        # smaller than the canvas): send the whole image, with the selection, if any.
        boxes = [(0, 0, image.get_width(), image.get_height())]
    else:
        ok, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
        if not (ok and non_empty):
            raise UserError(NO_SELECTION)
        areas = [offset(b, x1, y1) for b in area_boxes(read_selection(image, (x1, y1, x2, y2)), x2 - x1, y2 - y1)]
        if not areas:
            raise UserError(NO_SELECTION)
        boxes = crop_boxes(areas, image.get_width(), image.get_height(), settings.grow, settings.feather,
                           settings.context)
    painted = settings.sample is SampleFrom.CHANNEL
    sources = [read_channel(image, settings.sample_channel, box) if painted else None for box in boxes]
    # The composite is what a user sees: groups, text layers and several layers alike.
    source = Gimp.Layer.new_from_visible(image, image, "visible") if settings.source is Source.VISIBLE else drawable
    try:
        return [Crop(box, read_pixels(source, box), read_selection(image, box), area)
                for box, area in zip(boxes, sources)]
    finally:
        if source is not drawable:
            source.delete()


def wait_for(job: FillJob) -> None:
    """Keep GIMP's progress bar moving while the worker thread talks to the backend."""
    Gimp.progress_init("Inpainting the selection…")
    shown = None
    job.start()
    while job.is_alive():
        if job.message != shown:
            shown = job.message
            Gimp.progress_set_text(shown)
        Gimp.progress_update(job.progress)
        job.join(0.1)
    Gimp.progress_end()
    if job.error is not None:
        raise job.error


def insert_results(image, drawable, named_pieces):
    """One new layer above the source per (name, pieces), the first on top, all as one undo step."""
    kind = Gimp.ImageType.GRAYA_IMAGE if image.get_base_type() == Gimp.ImageBaseType.GRAY else Gimp.ImageType.RGBA_IMAGE
    layers = []
    image.undo_group_start()
    try:
        for name, pieces in named_pieces:  # each goes right above the source, so below the ones before it
            x0, y0, x1, y1 = union([p.box for p in pieces])
            layer = Gimp.Layer.new(image, name, x1 - x0, y1 - y0, kind, 100.0, Gimp.LayerMode.NORMAL)
            image.insert_layer(layer, drawable.get_parent(), image.get_item_position(drawable))
            layer.set_offsets(x0, y0)
            buffer = layer.get_buffer()
            for piece in pieces:
                buffer.set(_rect(offset(piece.box, -x0, -y0)), RGBA, piece.pixels)
            buffer.flush()
            layer.update(0, 0, x1 - x0, y1 - y0)
            layers.append(layer)
    finally:
        image.undo_group_end()
    return layers


def inpaint(image, drawables, settings: FillSettings):
    if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
        raise UserError(ONE_LAYER)
    drawable = drawables[0]
    if drawable.is_group_layer() and settings.source is Source.LAYER:
        raise UserError("A layer group has no pixels of its own: choose Source: Visible image, "
                        "or select a layer inside the group.")
    crops = read_crops(image, drawable, settings)
    runs = settings.runs(secrets.randbelow(MAX_SEED - MAX_VARIATIONS))
    watchdog = Watchdog(settings.url, settings.token)
    try:
        job = FillJob(Backend(settings.url, settings.token), settings, crops, watchdog, runs=runs)
        wait_for(job)
    finally:
        watchdog.close()
    if not any(fill.pieces for fill in job.fills):
        raise UserError("The backend changed no pixels: the selection may be too faint, "
                        "or shrunk away by a negative Grow.")
    by_model = bool(settings.models_to_compare())
    named = [(layer_name(drawable.get_name(), fill.model or "default", fill.seed, by_model), fill.pieces)
             for fill in job.fills if fill.pieces]
    layers = insert_results(image, drawable, named)
    Gimp.displays_flush()
    return layers[0]


def settings_from(config) -> FillSettings:
    return FillSettings.from_values(config.get_property)


def token_file() -> Path:
    return Path(Gimp.directory()) / "inpaint-selection" / "token"


def take_token(config, run_mode) -> str:
    """The token for this run, removed from the config so GIMP never saves it (see fill_settings.save_token)."""
    token = config.get_property("token") or ""
    if run_mode == Gimp.RunMode.INTERACTIVE:
        save_token(token_file(), token)
    elif run_mode == Gimp.RunMode.WITH_LAST_VALS:
        token = load_token(token_file())
    config.set_property("token", "")
    return token


# ---- dialog --------------------------------------------------------------------------------------

def show_dialog(procedure, config) -> bool:
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi

    GimpUi.init(PROC)
    dialog = build_dialog(procedure, config)
    try:
        return dialog.run()
    finally:
        dialog.destroy()


def build_dialog(procedure, config):
    """The dialog: a model list fetched from the server, then the procedure's other arguments."""
    gi.require_version("GimpUi", "3.0")
    gi.require_version("Gtk", "3.0")
    from gi.repository import GimpUi, Gtk

    for name in ("model", "url", "token", "sample-channel", "compare"):  # None (see FillSettings.from_values) would
        # upset the entries
        if config.get_property(name) is None:
            config.set_property(name, "")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Inpaint Selection")
    dialog.fill(["source", "grow", "feather", "context", "sample", "sample-width", "sample-channel",
                 "fill-transparent", "variations", "seed", "url", "token"])
    token = dialog.get_widget("token", GObject.TYPE_NONE)
    if hasattr(token, "get_entry"):  # a GimpLabelEntry: hide what is typed
        token.get_entry().set_visibility(False)

    models = Gtk.ComboBoxText.new_with_entry()
    models.get_child().set_text(config.get_property("model"))
    known = []  # the server's models, as last listed
    about = Gtk.Label(xalign=0.0, wrap=True, max_width_chars=50)  # the chosen model's description and card

    def model_typed(entry):
        config.set_property("model", entry.get_text().strip())
        about.set_text(model_note(known, entry.get_text().strip()))

    models.get_child().connect("changed", model_typed)
    status = Gtk.Label(xalign=0.0, wrap=True, max_width_chars=50)
    refresh = Gtk.Button(label="Refresh")

    def load_models(*_):
        """Ask the server in the URL field for its models; keep what is typed if it cannot answer."""
        typed = models.get_child().get_text()
        models.remove_all()
        try:
            settings = settings_from(config).checked()
            default, listing = Backend(settings.url, settings.token).models(timeout=3)
        except (BackendError, ValueError) as e:
            status.set_text(str(e))
            models.get_child().set_text(typed)
            return
        known[:] = listing
        for m in listing:
            if m.ready:
                models.append(m.id, m.id)
        list_compare([m for m in listing if m.ready])
        models.get_child().set_text(typed)
        models.get_child().set_placeholder_text(f"server default: {default}")
        waiting = [m.id for m in listing if not m.ready]
        ready = sum(m.ready for m in listing)
        status.set_text(f"{ready} ready model(s) at {settings.url}; leave empty for the default."
                        + (f" Not ready: {', '.join(waiting)}." if waiting else ""))

    compare = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=2)
    compare_label = Gtk.Label(xalign=0.0, wrap=True, max_width_chars=50,
                              label="Compare: tick models to get one layer from each (instead of the model above)")

    def list_compare(models_listed):
        """One tick per ready model; the ticked ones go to the 'compare' argument."""
        ticked = set(settings_from(config).models_to_compare())
        for child in compare.get_children():
            compare.remove(child)
        boxes = []

        def changed(*_):
            config.set_property("compare", ",".join(b.get_label() for b in boxes if b.get_active()))

        for m in models_listed:
            tick = Gtk.CheckButton(label=m.id, active=m.id in ticked)
            tick.set_tooltip_text(model_note([m], m.id) or None)
            tick.connect("toggled", changed)
            boxes.append(tick)
            compare.pack_start(tick, False, False, 0)
        changed()
        compare.show_all()

    refresh.connect("clicked", load_models)
    row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
    label = Gtk.Label.new_with_mnemonic("_Model")
    label.set_mnemonic_widget(models)
    row.pack_start(label, False, False, 0)
    row.pack_start(models, True, True, 0)
    row.pack_start(refresh, False, False, 0)
    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4, margin_bottom=6)
    box.pack_start(row, False, False, 0)
    box.pack_start(about, False, False, 0)
    box.pack_start(status, False, False, 0)
    box.pack_start(compare_label, False, False, 0)
    box.pack_start(compare, False, False, 0)
    content = dialog.get_content_area()
    content.pack_start(box, False, False, 0)
    content.reorder_child(box, 0)
    box.show_all()
    load_models()
    return dialog


# ---- registration ---------------------------------------------------------------------------------

class InpaintSelection(Gimp.PlugIn):
    def do_query_procedures(self):
        return [PROC]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run, None)
        proc.set_image_types("RGB*, GRAY*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        proc.set_menu_label("Inpaint Selection…")
        proc.add_menu_path("<Image>/Filters/Enhance")
        proc.set_documentation(
            "Fill the selection from its surroundings with a local inpainting backend",
            "Sends the selection and the pixels around it to inpaint-backend (run 'inpaint-backend serve') "
            "and puts the fill into a new layer above the source layer, which stays untouched.", name)
        proc.set_attribution("inpaint-backend contributors", "MIT license", "2025")
        d = FillSettings()
        sources = Gimp.Choice.new()
        sources.add(Source.LAYER.value, 0, "Active layer", "the selected layer's own pixels")
        sources.add(Source.VISIBLE.value, 1, "Visible image", "what the canvas shows (groups, text, several layers)")
        proc.add_string_argument("model", "_Model", "Model id from the backend; empty for its default", d.model, RW)
        proc.add_choice_argument("source", "So_urce", "Which pixels the fill sees", sources, d.source.value, RW)
        proc.add_int_argument("grow", "_Grow (px)", "Grow (negative: shrink) the selection", -200, 200, d.grow, RW)
        proc.add_int_argument("feather", "_Feather (px)", "Soft edge of the fill", 0, 200, d.feather, RW)
        proc.add_int_argument("context", "Conte_xt (px, -1 = auto)",
                              "Surrounding pixels the model sees around each area", -1, 4096, d.context, RW)
        samples = Gimp.Choice.new()
        for i, (choice, label, help_text) in enumerate([
                (SampleFrom.WHOLE, "Whole layer", "everything outside the selection"),
                (SampleFrom.AROUND, "Around the selection", "within the sample width of the selection"),
                (SampleFrom.SIDES, "Sides", "within the sample width, left and right of the selection only"),
                (SampleFrom.ABOVE_BELOW, "Above and below", "within the sample width, above and below only"),
                (SampleFrom.CHANNEL, "A saved channel", "where the named channel is more than half white")]):
            samples.add(choice.value, i, label, help_text)
        proc.add_choice_argument("sample", "Sample _from",
                                 "Where the fill may copy from (engines that copy patches, e.g. patchmatch)",
                                 samples, d.sample.value, RW)
        proc.add_int_argument("sample-width", "Sample _width (px)", "How far from the selection the fill may copy from",
                              1, 10000, d.sample_width, RW)
        proc.add_string_argument("sample-channel", "Sample c_hannel",
                                 "Name of the saved channel painted over the area to copy from", d.sample_channel, RW)
        proc.add_boolean_argument("fill-transparent", "Fill _transparent areas",
                                  "Also fill the layer's fully transparent pixels (e.g. after enlarging the canvas); "
                                  "no selection needed", d.fill_transparent, RW)
        proc.add_int_argument("variations", "_Variations", "Fills with seeds seed, seed + 1, ...: one layer each",
                              1, MAX_VARIATIONS, d.variations, RW)
        proc.add_int_argument("seed", "S_eed (-1 = random)", "The first variation's seed: the same seed, the same fill",
                              -1, MAX_SEED - MAX_VARIATIONS, d.seed, RW)
        proc.add_string_argument("compare", "_Compare models",
                                 "Comma-separated model ids: one layer from each instead of Model", d.compare, RW)
        proc.add_string_argument("url", "Ser_ver URL", f"inpaint-backend address, e.g. {DEFAULT_URL}", d.url, RW)
        proc.add_string_argument("token", "_Token",
                                 "Only for a server started with --token (kept in a private file, never in the image)",
                                 d.token, RW)
        proc.add_layer_return_value("layer", "Layer", "The new layer holding the fill", True, RW)
        return proc

    def run(self, procedure, run_mode, image, drawables, config, data):
        if run_mode == Gimp.RunMode.INTERACTIVE:
            config.set_property("token", config.get_property("token") or load_token(token_file()))
            if not show_dialog(procedure, config):
                config.set_property("token", "")
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
        settings = replace(settings_from(config), token=take_token(config, run_mode))
        try:
            layer = inpaint(image, drawables, settings.checked())
        except (UserError, BackendError, ValueError) as e:
            return _failure(procedure, str(e))
        except Exception as e:  # a bug: still say what happened instead of a bare "plug-in crashed"
            traceback.print_exc()
            return _failure(procedure, f"Inpaint Selection failed: {type(e).__name__}: {e}")
        values = procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)
        values.remove(1)
        values.insert(1, _gvalue(Gimp.Layer, layer))
        return values


def _gvalue(gtype, obj):
    value = GObject.Value(gtype)
    value.set_object(obj)
    return value


def _failure(procedure, message: str):
    error = GLib.Error.new_literal(GLib.quark_from_string("inpaint-selection"), message, 0)
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, error)


if __name__ == "__main__":
    Gimp.main(InpaintSelection.__gtype__, sys.argv)
