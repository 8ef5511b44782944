"""CISI-net as a trainable, servable method: the three consistency constraints and the alternating updates."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from backend.methods.cisi import losses
from backend.methods.cisi.model import ContentEncoder, Decoder, MultiScaleDiscriminator, StyleEncoder, init_weights
from backend.methods.cisi.recipe import RECIPES
from backend.training.features import IMAGENET_TO_CAFFE, VGG16_FILE, find_torchvision, vgg16, vgg16_hed
from backend.training.losses import perceptual
from backend.training.method import Method, StepContext, frozen, pad_to_multiple, unwrap


def second_corruption(hole: torch.Tensor) -> torch.Tensor:
    """A second random hole per image for the mutual-consistency pair: the next image's hole.

    The trainer draws every image's hole independently, so within a batch this is a fresh random
    hole of the same family; a batch of one mirrors its own hole instead."""
    return hole.roll(1, 0) if hole.shape[0] > 1 else hole.flip(-1)


class CISINet(Method):
    id = "cisi"
    description = ("CISI-net (content inference and style imitation): infers the content code of the corrupted "
                   "image in latent space and renders it with the style code of the known region through AdaIN.")
    recipes = RECIPES
    inference_networks = ("ice", "style", "decoder")
    ema_networks = ("ice", "style", "decoder")
    multiple = 4  # two stride-2 layers in the content encoders (the recipes' downsample)

    def build_networks(self):
        c = self.config
        if c["latent_guidance"] and not c["separate"]:
            raise ValueError("latent_guidance needs separate=true: the guide is the self-content encoder's code")
        dim, down, blocks, style_dim = int(c["dim"]), int(c["downsample"]), int(c["blocks"]), int(c["style_dim"])
        sce = ContentEncoder(3, dim, down, blocks)
        # The corrupted image and its hole mask (which pixels to infer; the paper does not say what else the ICE reads).
        # Configs without "ice_head" come from checkpoints of the older instance-norm + ReLU head.
        ice = ContentEncoder(4, dim, down, blocks, tuple(int(d) for d in c["dilations"]), extra_block=True,
                             head=c.get("ice_head", "instance-relu"))
        nets = {
            "sce": sce, "ice": ice, "style": StyleEncoder(dim, style_dim, int(c["style_downsample"])),
            "decoder": Decoder(sce.out_channels, style_dim, int(c["mlp_dim"]), blocks, down, adaptive=bool(c["separate"])),
            "discriminator": MultiScaleDiscriminator(int(c["d_scales"]), int(c["d_dim"]), int(c["d_layers"])),
        }
        for name, net in nets.items():
            init_weights(net, "normal" if name == "discriminator" else "kaiming")
        return nets

    def build_optimizers(self):
        betas = tuple(float(b) for b in self.config["betas"])
        return {name: torch.optim.Adam(net.parameters(), lr=float(self.config["lr"]), betas=betas)
                for name, net in self.nets.items()}

    def features(self) -> torch.nn.Module:
        """The frozen VGG-16 up to pool3, built on first use: serving never needs it."""
        if getattr(self, "_features", None) is None:
            name, path = self.config.get("features", "vgg16-hed"), self.config.get("features_path")
            if name == "vgg16-hed":
                net, self._feature_scale = vgg16_hed(path, taps=losses.VGG16_POOLS), 1.0
            elif name == "vgg16":  # the paper's: torchvision's ImageNet VGG-16, on the HED network's scale
                state = torch.load(find_torchvision(VGG16_FILE, path), map_location="cpu", weights_only=True)
                net, self._feature_scale = vgg16(state, taps=losses.VGG16_POOLS), IMAGENET_TO_CAFFE
            else:
                raise ValueError(f"features must be vgg16 or vgg16-hed (VGG-16 pool1-3), got {name!r}")
            self._features = net.eval().requires_grad_(False).to(self.device)
        return self._features

    def vgg(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [f.float() * self._feature_scale for f in self.features()((x + 1) / 2)]

    # ---- the pieces of the consistency constraints ----

    def encode(self, corrupted: torch.Tensor, hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Inferred content code and style code of a corrupted image ([-1, 1], hole at 0)."""
        content = self.nets["ice"](torch.cat([corrupted, hole], 1))
        style = self.nets["style"](corrupted) if self.config["separate"] else None
        return content, style

    def reconstruction(self, out: torch.Tensor, target: torch.Tensor, hole: torch.Tensor | None,
                       target_feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted L1 and perceptual terms (hole None: a complete image, every pixel weighs 1)."""
        cfg = self.config
        hw, kw = float(cfg["hole_weight"]), float(cfg["known_weight"])
        if hole is None:
            return F.l1_loss(out, target), perceptual(self.vgg(out), target_feats)
        pixel = losses.weighted_l1(out, target, losses.weights(hole, hw, kw))
        masks = losses.feature_masks(hole, float(cfg["feature_threshold"]))
        return pixel, losses.weighted_perceptual(self.vgg(out), target_feats, masks, hw, kw)

    def patch_masks(self, hole: torch.Tensor) -> list[torch.Tensor]:
        D = unwrap(self.nets["discriminator"])
        return losses.patch_masks(hole, len(D.nets), D.layers, float(self.config["patch_threshold"]))

    def train_step(self, image: torch.Tensor, hole: torch.Tensor, ctx: StepContext, step: int) -> dict[str, float]:
        cfg, n = self.config, self.nets
        sep, guide = bool(cfg["separate"]), bool(cfg["latent_guidance"])
        x = image * 2 - 1
        holes = (hole, second_corruption(hole))
        patches = [self.patch_masks(h) for h in holes]
        logs: dict[str, float] = {}
        with torch.no_grad(), ctx.autocast():
            x_feats = self.vgg(x)

        # 1. Self-consistency: the complete image through its own content and style codes and back,
        # and the codes recovered from the reconstruction. Updates the self-content encoder (with
        # the style encoder and decoder that share the path).
        if sep:
            with ctx.autocast():
                c_gt, s_gt = n["sce"](x), n["style"](x)
                rec = n["decoder"](c_gt, s_gt).float()
                pix, perc = self.reconstruction(rec, x, None, x_feats)
                self_loss = cfg["w_l1"] * pix + cfg["w_perceptual"] * perc
                c_rec, s_rec = n["sce"](rec), n["style"](rec)
                self_loss = self_loss + cfg["w_content"] * F.l1_loss(c_rec.float(), c_gt.detach().float()) \
                    + cfg["w_style"] * F.l1_loss(s_rec.float(), s_gt.detach().float())
            ctx.step(("sce", "style", "decoder"), self_loss)
            logs.update(self_l1=pix.item(), self_perceptual=perc.item())
            with torch.no_grad(), ctx.autocast():  # the content guide, from the SCE as just updated
                c_gt = n["sce"](x).float()

        # 2. Inferring and mutual consistency on two corruptions of the image; the SCE stays fixed.
        with frozen(n["sce"], n["discriminator"]), ctx.autocast():
            corrupted = [x * (1 - h) for h in holes]
            codes = [self.encode(c, h) for c, h in zip(corrupted, holes)]
            outs = [n["decoder"](c, s).float() for c, s in codes]
            pixel = perceptual = content = style = 0.0
            for out, h in zip(outs, holes):
                p, f = self.reconstruction(out, x, h, x_feats)
                pixel, perceptual = pixel + p, perceptual + f
            if sep:  # mutual: the first corruption's style renders the second's content into the ground truth
                p, f = self.reconstruction(n["decoder"](codes[1][0], codes[0][1]).float(), x, holes[1], x_feats)
                pixel, perceptual = pixel + p, perceptual + f
                # The style codes of the corruptions and of the complete image meet each other. The complete
                # image's code keeps its gradient: against a detached copy the style encoder chases its own
                # moving target and its unnormalised output grows without bound (x10 in 30 steps).
                s_gt = n["style"](x).float()
                (_, s1), (_, s2) = codes
                style = F.l1_loss(s1.float(), s_gt) + F.l1_loss(s2.float(), s_gt) + F.l1_loss(s1.float(), s2.float())
            completed = [out * h + x * (1 - h) for out, h in zip(outs, holes)]
            if guide:  # the content codes of both corruptions and of a completed image equal the guide
                (c1, _), (c2, _) = codes
                content = F.l1_loss(c1.float(), c_gt) + F.l1_loss(c2.float(), c_gt) + F.l1_loss(c1.float(), c2.float())
                content = content + F.l1_loss(n["sce"](completed[0]).float(), c_gt)
                style = style + F.l1_loss(n["style"](completed[0]).float(), s_gt)
            adv = sum(losses.lsgan_g([s.float() for s in n["discriminator"](c)], p) for c, p in zip(completed, patches))
            g_loss = (cfg["w_l1"] * pixel + cfg["w_perceptual"] * perceptual + cfg["w_adv"] * adv
                      + cfg["w_content"] * content + cfg["w_style"] * style)
        ctx.step(("ice", "style", "decoder") if sep else ("ice", "decoder"), g_loss)

        # 3. The multi-scale discriminator on the hole patches of both completions.
        with ctx.autocast():
            real = [s.float() for s in n["discriminator"](x)]
            d_loss = sum(losses.lsgan_d(real, [s.float() for s in n["discriminator"](c.detach())], p)
                         for c, p in zip(completed, patches))
        ctx.step("discriminator", d_loss)
        terms = dict(g=g_loss, l1=pixel, perceptual=perceptual, adv=adv, content=content, style=style, d=d_loss)
        logs.update({k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in terms.items()})
        return logs

    def inpaint(self, image: torch.Tensor, hole: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Any size: padded by reflection to the content encoders' multiple, one forward pass.

        Small crops are padded up to where the widest dilation still finds pixels to reflect."""
        h, w = image.shape[-2:]
        multiple = 2 ** int(self.config["downsample"])
        minimum = multiple * (max(int(d) for d in self.config["dilations"]) + 1)
        x = pad_to_multiple(image * 2 - 1, multiple, minimum)
        m = pad_to_multiple(hole, multiple, minimum)
        content, style = self.encode(x * (1 - m), m)
        out = self.nets["decoder"](content, style)[..., :h, :w]
        return (out + 1) / 2
