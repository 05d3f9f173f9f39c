"""ViT-style image encoders beyond ViT (DeiT, BEiT, DINOv2, DINOv2 with registers) on task tokens, and the image
models FPT refuses. Tiny models from tests/helpers.py's zoo (a 7x7 grid of 4-pixel patches, hidden 16, 2 blocks)."""

import pytest
import torch

from tests.helpers import FAST, compose_cfg, save_tiny

# family -> the encoder's own leading tokens: (positioned prefix, unpositioned registers)
OWN = {"vit": (1, 0), "deit": (2, 0), "beit": (1, 0), "dinov2": (1, 0), "dinov2_with_registers": (1, 2)}
BEIT_OPTIONS = dict(use_absolute_position_embeddings=True, use_relative_position_bias=False,
                    use_shared_relative_position_bias=True, use_mean_pooling=False)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _hf(path):
    import transformers

    return transformers.AutoModel.from_pretrained(path).eval()


def _cfg(path, *overrides):
    return compose_cfg("trunk=auto", f"trunk.path={path}", *FAST, "trainer.precision=32-true", *overrides)


def _xor():
    from fpt.tasks.base import TaskSpec

    return TaskSpec(seq_len=10, token_dim=1, num_classes=2, readout="last_k", k=5)


@pytest.mark.parametrize("family, changes", [(f, {}) for f in OWN] + [("beit", BEIT_OPTIONS)],
                         ids=list(OWN) + ["beit-absolute-shared-bias"])
def test_on_the_whole_patch_grid_the_task_path_is_hugging_faces_own_forward(tmp_path, family, changes):
    """Patch embeddings fed as task tokens give HF's outputs at the patch positions: prefix order, position rows,
    registers, BEiT's relative bias and final norm all as in pretraining."""
    from fpt.trunks.forward import vit_outputs

    model = _hf(save_tiny(tmp_path, family, **changes))
    pixels = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        patches = model.embeddings.patch_embeddings(pixels)  # (b, 49, h): what the task's tokens replace
        ours = vit_outputs(model, patches, torch.ones(2, 49, dtype=torch.bool)).last_hidden_state
        theirs = model(pixel_values=pixels).last_hidden_state
    k = sum(OWN[family])
    assert ours.shape == (2, 49, 16) and theirs.shape == (2, k + 49, 16)
    torch.testing.assert_close(ours, theirs[:, k:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family, token", [("deit", "distillation_token"), ("dinov2_with_registers", "register_tokens")])
def test_the_encoders_own_tokens_lead_are_seen_and_are_cut(zoo, family, token):
    """Task token i takes position row (prefix + i); the extra tokens change what the task tokens read, and no
    output belongs to them."""
    from fpt.trunks.forward import vit_outputs

    model = _hf(zoo[family])
    x, mask = torch.randn(2, 10, 16, generator=torch.Generator().manual_seed(1)), torch.ones(2, 10, dtype=torch.bool)
    prefix = OWN[family][0]
    with torch.no_grad():
        out = vit_outputs(model, x, mask, hidden_states=True)
        torch.testing.assert_close(out.hidden_states[0], x + model.embeddings.position_embeddings[:, prefix:prefix + 10])
        own = getattr(model.embeddings, token)
        own.add_(torch.randn(own.shape, generator=torch.Generator().manual_seed(2)))  # not a constant: a norm cancels it
        moved = vit_outputs(model, x, mask).last_hidden_state
    assert out.last_hidden_state.shape == moved.shape == (2, 10, 16) and len(out.hidden_states) == 3
    assert not torch.allclose(out.last_hidden_state, moved)


def test_beits_relative_bias_covers_cls_and_the_first_t_patches(zoo):
    """With t < 49 task tokens each block adds the bias of CLS and grid patches 0..t-1 (raster order)."""
    from fpt.trunks.forward import vit_outputs

    model = _hf(zoo["beit"])
    seen = []
    block = model.layers[1]
    hook = block.attention.register_forward_pre_hook(lambda mod, a, kw: seen.append(kw["attention_mask"]), with_kwargs=True)
    with torch.no_grad():
        vit_outputs(model, torch.randn(1, 10, 16), torch.ones(1, 10, dtype=torch.bool))
        full = block.relative_position_bias((7, 7))  # (1, n, 50, 50): CLS + the whole grid
    hook.remove()
    assert full.shape == (1, 2, 50, 50) and seen[0].shape == (1, 2, 11, 11)
    torch.testing.assert_close(seen[0], full[..., :11, :11])


def test_groups_limits_and_layer_scale_of_the_vision_families(zoo):
    from fpt.models.build import build_model

    groups, limits = {}, {}
    for family in ("deit", "beit", "dinov2_with_registers"):
        model = build_model(_cfg(zoo[family]), _xor())
        groups.update(model.param_groups())
        limits[family] = (model.trunk_spec.positions, model.trunk_spec.max_len, model.trunk_spec.forward)
    assert limits == {"deit": ("learned", 49, "vit"), "beit": ("relative", 49, "vit"),
                      "dinov2_with_registers": ("learned", 49, "vit")}  # 49 patches whatever the table's extra rows
    expect = {"embeddings.distillation_token": "emb", "embeddings.register_tokens": "emb", "embeddings.cls_token": "emb",
              "layers.0.lambda_1": "attn", "layers.0.lambda_2": "ffn",  # BEiT's layer scale follows its branch
              "encoder.layer.0.layer_scale1.lambda1": "attn", "encoder.layer.0.layer_scale2.lambda1": "ffn",
              "layers.0.relative_position_bias.relative_position_bias_table": "pos"}
    assert {n: groups[f"trunk.{n}"] for n in expect} == expect


@pytest.mark.parametrize("family", ["beit", "dinov2_with_registers"])
def test_kept_blocks_run_with_their_own_bias_and_path(zoo, family):
    from fpt.models.build import build_model

    model = build_model(_cfg(zoo[family], "model.blocks=[1]"), _xor()).eval()
    assert model.trunk_spec.n_blocks == 1 and model.trunk_spec.kept == (1,)
    with torch.no_grad():
        out = model(torch.randint(0, 2, (2, 10, 1)).float(), torch.ones(2, 10, dtype=torch.bool))
    assert out.shape == (2, 5, 2) and torch.isfinite(out).all()


def test_dinov2_with_registers_trains_on_mnist_with_fpt_train(tmp_path):
    from fpt.run.train import train
    from fpt.tasks.images import Mnist

    path = save_tiny(tmp_path, "dinov2_with_registers")
    Mnist.write_data(tmp_path / "data", n_train=40, n_test=10)
    cfg = compose_cfg("task=mnist", f"data.root={tmp_path / 'data'}", "trunk=auto", f"trunk.path={path}",
                      *(o for o in FAST if not o.startswith("task.")), "trainer.precision=32-true", "trainer.max_steps=3",
                      "trainer.val_check_interval=3", "task.batch_size=8", "task.val_size=8")
    res = train(cfg, tmp_path / "run")
    assert res["steps"] == 3 and 0 <= res["test/acc"] <= 1


def test_image_models_without_a_task_token_path_are_refused_by_name_and_reason():
    import transformers

    from fpt.errors import FPTError
    from fpt.trunks.vision import refuse_image_model

    for name in ("ViT", "DeiT", "Beit", "Dinov2", "Dinov2WithRegisters", "Bert"):  # these pass
        refuse_image_model(getattr(transformers, f"{name}Config")(), getattr(transformers, f"{name}Model"))
    cases = {"Swinv2": "merges patches between stages", "ConvNextV2": "convolutional network",
             "Levit": "reads images (pixel_values), not token embeddings"}  # LeViT: caught by its signature alone
    for name, why in cases.items():
        with pytest.raises(FPTError) as e:
            refuse_image_model(getattr(transformers, f"{name}Config")(), getattr(transformers, f"{name}Model"))
        assert why in str(e.value) and "dinov2" in str(e.value) and "\n" not in str(e.value)
