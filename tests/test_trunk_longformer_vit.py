"""The paper's other trunks end to end: Longformer on ListOps uncut and on CIFAR-10 LRA, ViT on MNIST."""


import pytest
import torch

from tests.helpers import FAST, auto_cfg, compose_cfg, save_tiny, xor_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny trunks: a second thread only adds its wake-ups


# --- the paper's other trunks end to end: Longformer on ListOps uncut, ViT on MNIST ----------------------------
def test_longformer_runs_listops_at_2000_tokens_uncut(tmp_path):
    from fpt.run.train import train
    from fpt.tasks.listops import ListOps

    path = save_tiny(tmp_path, "longformer", max_position_embeddings=4098, attention_window=16)
    ListOps.write_data(tmp_path / "data", train_size=6, val_size=2, test_size=2, min_len=1200, max_len=1990,
                       max_depth=10, max_args=10, seed=3)
    cfg = compose_cfg("task=listops", f"data.root={tmp_path / 'data'}", "trunk=longformer", f"trunk.path={path}", *FAST,
                      "trainer.precision=32-true", "trainer.max_steps=2", "trainer.val_check_interval=2",
                      "task.batch_size=2", "eval.train_acc=false")
    res = train(cfg, tmp_path / "run")
    assert res["truncation"]["max_len"] == 2000
    assert all(res["truncation"][s]["examples_cut"] == 0.0 for s in ("train", "val", "test"))
    assert res["steps"] == 2 and 0 <= res["test/acc"] <= 1


def test_longformer_takes_cifar10_lra_at_1024_and_pads_to_its_window_inside(tmp_path):
    from fpt.models.build import build_model
    from fpt.tasks.base import TaskSpec

    path = save_tiny(tmp_path, "longformer", max_position_embeddings=1026, attention_window=16)
    spec = TaskSpec(seq_len=1024, vocab_size=256, num_classes=10, readout="last")
    model = build_model(compose_cfg("trunk=longformer", f"trunk.path={path}"), spec).eval()
    assert model.spec.seq_len == 1024 and model.trunk_spec.max_len == 1024
    x = torch.randint(0, 256, (1, 1000))  # not a multiple of the window: padded inside, cut back
    with torch.no_grad():
        h = model._body_forward(model.trunk, model.input(x), torch.ones(1, 1000, dtype=torch.bool))
    assert h.shape == (1, 1000, 16)


def test_vit_trains_on_mnist_its_tokens_bypassing_the_patch_projection(tmp_path):
    from fpt.run.train import build, train
    from fpt.tasks.images import Mnist

    path = save_tiny(tmp_path, "vit")
    Mnist.write_data(tmp_path / "data", n_train=40, n_test=10)
    cfg = compose_cfg("task=mnist", f"data.root={tmp_path / 'data'}", "trunk=vit", f"trunk.path={path}",
                      *(o for o in FAST if not o.startswith("task.")), "trainer.precision=32-true", "trainer.max_steps=3", "trainer.val_check_interval=3",
                      "task.batch_size=8", "task.val_size=8")
    _, lit = build(cfg)
    m = lit.model
    assert m.spec.seq_len == 49 == m.trunk_spec.max_len and m.trunk_spec.forward == "vit"
    groups = m.param_groups()
    assert groups["trunk.embeddings.cls_token"] == "emb" and groups["trunk.embeddings.patch_embeddings.projection.weight"] == "emb"
    assert groups["trunk.embeddings.position_embeddings"] == "pos"
    res = train(cfg, tmp_path / "run")
    assert res["steps"] == 3 and 0 <= res["test/acc"] <= 1


def test_vit_prepends_cls_reads_position_rows_in_order_and_cuts_beyond_them(zoo):
    from fpt.models.build import build_model
    from fpt.trunks.forward import vit_outputs
    from fpt.tasks.base import TaskSpec

    model = build_model(auto_cfg(zoo, "vit"), xor_spec()).eval()
    trunk = model.trunk
    x, mask = torch.randn(2, 10, 16), torch.ones(2, 10, dtype=torch.bool)
    with torch.no_grad():
        out = vit_outputs(trunk, x, mask, hidden_states=True)
        emb = trunk.embeddings
        first = torch.cat([emb.cls_token.expand(2, -1, -1), x], 1) + emb.position_embeddings[:, :11]
    assert out.last_hidden_state.shape == (2, 10, 16) and len(out.hidden_states) == 3
    torch.testing.assert_close(out.hidden_states[0], first[:, 1:])  # row 1 + i for token i; CLS's row 0 goes to CLS
    long = TaskSpec(seq_len=60, vocab_size=5, pad_id=0, num_classes=2, readout="last", truncatable=True)
    assert build_model(auto_cfg(zoo, "vit"), long).spec.seq_len == 49  # a longer task is cut to the 49 patch rows
