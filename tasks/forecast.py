"""`task=forecast data.name=ETTh1|ETTh2|ETTm1|ETTm2|weather|electricity|traffic|...`: long-horizon forecasting.

The standard CSVs (a `date` column, then one column per channel) from `<data.root>/NAME.csv` (or `ETT-small/NAME.csv`,
`NAME/NAME.csv`), else a series the installed `aeon` package ships (`solar`: the offline demo). Splits as the
forecasting papers cut them: ETT 12/4/4 months (hourly: 8640/2880/2880 rows; the 15-minute ETTm files four times that),
the others 7:1:2; validation and test windows start `seq_len` rows before their split so their inputs may reach back.
Every channel is standardised by the training rows' statistics; MSE and MAE are reported on that scale.

An example is a window of `seq_len` input steps and the next `horizon` steps; with `channel_independent` (One Fits
All) each channel of a window is its own example (tokens: patches of `patch_len` steps), else all channels share the
tokens. `norm=instance` (RevIN) normalises each input window by its own mean and std and maps the predictions back.
`readout=flatten` (One Fits All's head, the default) puts every patch's output side by side into one Linear(patches x
hidden, horizon); `mean` averages the patches first (a Linear(hidden, horizon): patches times fewer weights).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from einops import rearrange, repeat

from fpt.errors import FPTError
from fpt.config.schema import Count, CountOrNull, Dropout, Flag, NonNegative, Options, choice
from fpt.tasks.arrays import ArrayOptions, ArrayTask, expect_file
from fpt.tasks.dlinear import dlinear
from fpt.tasks.references import add_note
from fpt.tasks.spec import TaskSpec
from fpt.tasks.uea import bundled_root

ETT_COLUMNS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
MONTH = 30 * 24  # hourly rows in the ETT papers' month


def ett_rows(name: str) -> int:
    """Rows per hour-month unit: 1 for ETTh, 4 for the 15-minute ETTm files."""
    return 4 if name.startswith("ETTm") else 1


def borders(name: str, n: int, seq_len: int) -> list[tuple[int, int]]:
    """(start, end) rows of train, val and test, the val/test starts `seq_len` early (the papers' Dataset_ETT_* cuts)."""
    if name.startswith("ETT"):
        m = MONTH * ett_rows(name)
        ends = [12 * m, 16 * m, 20 * m]
    else:
        train, test = int(n * 0.7), int(n * 0.2)
        ends = [train, n - test, n]
    starts = [0, ends[0] - seq_len, ends[1] - seq_len]
    return list(zip(starts, ends))


def find_csv(name: str, root: Path) -> Path:
    """The CSV of `name` under data.root, else a series aeon ships; one-line error otherwise."""
    places = [root / f"{name}.csv", root / "ETT-small" / f"{name}.csv", root / name / f"{name}.csv"]
    bundled = bundled_root()
    if bundled is not None:
        places.append(bundled / name / f"{name}.csv")
    for p in places:
        if p.is_file():
            return p
    raise FPTError(f"forecast data '{name}' not found: no {places[0]} (nor ETT-small/{name}.csv, {name}/{name}.csv, aeon's bundled "
                   f"copies); put the standard CSV there, or write a synthetic one: fpt data forecast out=DIR name={name}")


def read_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    """The channels (rows, c) of a forecasting CSV whose first column holds dates, and their names."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (ValueError, OSError) as e:
        raise FPTError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    first = frame.columns[0]
    try:
        pd.to_datetime(frame[first].head(50), errors="raise", format="mixed")
        ok = not pd.api.types.is_numeric_dtype(frame[first])
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise FPTError(f"{path}: no date column (the first column '{first}' holds no dates); the standard CSVs start with 'date'")
    values = frame.iloc[:, 1:].to_numpy(dtype=np.float32)
    if not np.isfinite(values).all():
        raise FPTError(f"{path}: {int((~np.isfinite(values)).sum())} missing or non-numeric values; fill them first")
    return values, [str(c) for c in frame.columns[1:]]


class ForecastOptions(ArrayOptions):
    batch_size: Count = 64
    eval_batch_size: Count = 512
    seq_len: Count = 336  # input steps
    horizon: Count = 96  # steps to predict: 96, 192, 336 or 720 in the papers
    patch_len: Count = 16
    stride: Count = 8
    norm: choice("instance", "none") = "instance"  # instance: RevIN (One Fits All); every channel is standardised first
    channel_independent: Flag = True
    readout: choice("flatten", "mean", "last") = "flatten"  # flatten: One Fits All's Linear(patches x hidden, horizon)
    head_dropout: Dropout = 0.0  # before the output layer; One Fits All's long-term forecasting code has none there
    dlinear_max_examples: NonNegative = 2_000_000  # baseline/dlinear_*'s budget: training windows x channels (0: skip)


class ForecastData(Options):
    """`fpt data forecast out=DIR name=ETTh1 [rows=N]`: a synthetic CSV in the real column layout."""

    name: choice("ETTh1", "ETTh2", "ETTm1", "ETTm2") = "ETTh1"
    rows: CountOrNull = None  # default: the real file's (17420 hourly, 69680 for ETTm)
    seed: NonNegative = 0


class Windows(torch.utils.data.Dataset):
    """(window, channel) examples over a standardised split (rows, c): inputs patched, targets the next `horizon` steps."""

    def __init__(self, series: np.ndarray, options: ForecastOptions, limit: int | None = None):
        self.s, self.t = torch.from_numpy(series), options
        self.windows = len(series) - options.seq_len - options.horizon + 1
        self.per = series.shape[1] if options.channel_independent else 1
        self.n = self.windows * self.per if limit is None else min(limit, self.windows * self.per)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i

    def collate(self, idx: list[int]) -> dict[str, torch.Tensor]:
        t = self.t
        w = torch.as_tensor(idx) // self.per
        steps = w[:, None] + torch.arange(t.seq_len + t.horizon)  # (b, seq_len + horizon)
        win = self.s[steps]  # (b, s + h, c)
        if t.channel_independent:
            win = win[torch.arange(len(idx)), :, torch.as_tensor(idx) % self.per][..., None]  # (b, s + h, 1)
        x, y = win[:, : t.seq_len], win[:, t.seq_len :]
        return {**window_tokens(x, t), "y": rearrange(y, "b h c -> b (h c)")}


def window_tokens(x: torch.Tensor, t: ForecastOptions) -> dict[str, torch.Tensor]:
    """Input windows x (b, seq_len, c) on the standardised scale -> patch tokens and their mask, and under norm=instance
    each window's loc and scale (b, horizon * c) that map its predictions back (RevIN)."""
    out = {}
    if t.norm == "instance":
        loc, scale = x.mean(1, keepdim=True), x.std(1, keepdim=True, unbiased=False).clamp_min(1e-5)  # (b, 1, c)
        x = (x - loc) / scale
        h = t.horizon
        out = {"loc": repeat(loc[:, 0], "b c -> b (h c)", h=h), "scale": repeat(scale[:, 0], "b c -> b (h c)", h=h)}
    x = torch.cat([x, x[:, -1:].expand(-1, t.stride, -1)], 1)  # One Fits All's replication pad of one stride
    tokens = rearrange(x.unfold(1, t.patch_len, t.stride), "b p c l -> b p (l c)")
    return {"x": tokens.contiguous(), "mask": torch.ones(tokens.shape[:2], dtype=torch.bool), **out}


class Forecast(ArrayTask):
    """Long-horizon forecasting on a standard CSV: MSE/MAE of the next `horizon` steps on the standardised scale."""

    Options = ForecastOptions
    DataOptions = ForecastData
    options: ForecastOptions

    @property
    def name(self) -> str:
        if not self.data.get("name"):
            raise FPTError("task=forecast needs data.name=NAME (ETTh1, ETTm1, weather, electricity, traffic, ... or solar)")
        return str(self.data["name"])

    def data_files(self) -> list[Path]:
        return [find_csv(self.name, self.root)]

    @property
    def spec(self) -> TaskSpec:
        o = self.options
        c = 1 if o.channel_independent else self.arrays()["train"].shape[1]
        return TaskSpec(seq_len=(o.seq_len + o.stride - o.patch_len) // o.stride + 1, num_classes=1,
                        token_dim=o.patch_len * c, targets_per_position=o.horizon * c, readout=o.readout,
                        objective="forecast", head_dropout=o.head_dropout)

    def load(self) -> dict[str, np.ndarray]:
        path = find_csv(self.name, self.root)
        values, self._columns = read_csv(path)
        cuts = borders(self.name, len(values), self.options.seq_len)
        need = self.options.seq_len + self.options.horizon
        if cuts[-1][1] > len(values) or any(e - s < need for s, e in cuts):
            short = min(e - s for s, e in cuts)
            raise FPTError(f"{path}: {len(values)} rows leave a split of {short} rows (cut at rows {[e for _, e in cuts]}), fewer "
                           f"than task.seq_len + task.horizon = {need}; use a shorter seq_len or horizon, or the full file")
        train = values[cuts[0][0] : cuts[0][1]]
        self._scaler = mean, std = train.mean(0), np.where(train.std(0) > 0, train.std(0), 1.0)
        return {s: ((values[a:b] - mean) / std).astype(np.float32) for s, (a, b) in zip(("train", "val", "test"), cuts)}

    def state(self) -> dict:
        """The spec, the CSV's channel names and the scaler fitted on the training rows."""
        self.arrays()
        return {**super().state(), "columns": list(self._columns), "mean": self._scaler[0].tolist(), "std": self._scaler[1].tolist()}

    def encode(self, x, mask, state: dict, where: str) -> dict[str, np.ndarray]:
        """Input windows x (N, task.seq_len, channels) in the data's units (`mask` does not apply) -> tokens, RevIN's loc/scale."""
        x, o, names = np.asarray(x, dtype=np.float32), self.options, state["columns"]
        if x.ndim != 3 or x.shape[2] != len(names):
            have = f"{x.shape[2]} channels" if x.ndim == 3 else f"shape {x.shape}, not (N, steps, channels)"
            raise FPTError(f"{where}: {have}, the run was trained on {len(names)} ({', '.join(names)})")
        if x.shape[1] != o.seq_len:
            raise FPTError(f"{where}: input windows of {x.shape[1]} steps, the run reads {o.seq_len} (task.seq_len)")
        x = ((x - np.float32(state["mean"])) / np.float32(state["std"])).astype(np.float32)
        if o.channel_independent:  # one example per (window, channel), in that order, as Windows makes them
            x = rearrange(x, "n s c -> (n c) s 1")
        return {k: v.numpy() for k, v in window_tokens(torch.from_numpy(np.ascontiguousarray(x)), o).items()}

    def read_new(self, path: Path, state: dict) -> tuple[dict[str, np.ndarray], None]:
        """A CSV in the training file's layout (date column, the same channels): its last task.seq_len rows, forecast."""
        path = expect_file(path, (".csv",), "forecast", "a CSV with a date column and the run's channels")
        values, names = read_csv(path)
        if len(names) != len(state["columns"]):
            raise FPTError(f"{path}: {len(names)} channels, the run was trained on {len(state['columns'])} "
                           f"({', '.join(state['columns'])})")
        if len(values) < self.options.seq_len:
            raise FPTError(f"{path}: {len(values)} rows, fewer than the run's input window of {self.options.seq_len} "
                           f"steps (task.seq_len)")
        return self.encode(values[None, -self.options.seq_len :], None, state, str(path)), None

    def to_data_units(self, values: np.ndarray, state: dict) -> np.ndarray:
        """Forecasts (examples, n) on the standardised scale -> (windows, horizon, channels) in the data's units."""
        c, h = len(state["columns"]), self.options.horizon
        v = rearrange(values, "(w c) h -> w h c", c=c) if self.options.channel_independent else values.reshape(-1, h, c)
        return v * np.float32(state["std"]) + np.float32(state["mean"])

    def baselines(self) -> dict:
        """DLinear on the runs' windows and scale (tasks/dlinear.py): `baseline/dlinear_mse` and `baseline/dlinear_mae`
        over the test windows, like test/mse and test/mae; fitted on the training windows the runs use (the windows
        data.train_size's first examples come from), its ridge penalty chosen on validation. Null with a note beyond
        task.dlinear_max_examples."""
        a, o = self.arrays(), self.options
        per = a["train"].shape[1] if o.channel_independent else 1
        windows = len(a["train"]) - o.seq_len - o.horizon + 1
        if self.train_size is not None:
            windows = min(windows, -(-self.train_size // per))
        out = {"baseline/dlinear_mse": None, "baseline/dlinear_mae": None}
        if (examples := windows * a["train"].shape[1]) > o.dlinear_max_examples:
            return add_note(out, f"dlinear skipped: {examples:.2g} training windows x channels exceed "
                                 f"task.dlinear_max_examples={o.dlinear_max_examples:.2g}")
        fit = dlinear(a["train"], a["val"], a["test"], o.seq_len, o.horizon, windows)
        out = {"baseline/dlinear_mse": round(fit.mse, 4), "baseline/dlinear_mae": round(fit.mae, 4)}
        return add_note(out, f"dlinear: closed-form ridge, penalty {fit.penalty:g} chosen on validation (val mse "
                             f"{fit.val_mse:.4f}), {windows} training windows x {a['train'].shape[1]} channels")

    def _set(self, split: str) -> Windows:
        return Windows(self.arrays()[split], self.options, self.train_size if split == "train" else None)

    @classmethod
    def write_data(cls, out: Path, name: str = "ETTh1", rows: int | None = None, seed: int = 0) -> list[Path]:
        """A synthetic ETT CSV: the real header (date, HUFL, ..., OT), hourly or 15-minute dates, the real row count;
        daily and weekly cycles plus noise, so a model can learn it."""
        import pandas as pd

        n = int(rows or 17420 * ett_rows(name))
        freq = "15min" if name.startswith("ETTm") else "h"
        t = np.arange(n) / (4 if freq == "15min" else 1)  # hours
        rng = np.random.default_rng(seed)
        cols = {c: (np.sin(2 * np.pi * t / 24 + k) * (k + 1) + 0.5 * np.sin(2 * np.pi * t / 168) + 0.1 * rng.normal(size=n)).round(3)
                for k, c in enumerate(ETT_COLUMNS)}
        frame = pd.DataFrame({"date": pd.date_range("2016-07-01", periods=n, freq=freq).strftime("%Y-%m-%d %H:%M:%S"), **cols})
        out = Path(out).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out / f"{name}.csv", index=False)
        return [out / f"{name}.csv"]
