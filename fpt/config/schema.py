"""The language of the option schemas: the vocabulary they are written in and how a failure becomes one line.

Every option the toolkit reads is a typed schema, checked in one place: the root config's sections in
fpt/config/sections.py (`validate`, called by `fpt.run.preflight` where a config is composed, before anything is
built; nothing after it re-checks a type or a range the schemas guarantee), each task's own options next to
its class (`Task.Options`, tasks/*.py), checked in the same step. Code that reads a data
file still checks what only the file can tell (a train_size larger than the file).

Schemas are pydantic models in strict mode: `yes` is not true, `"5"` is not 5, an unknown key is refused.
A failure is one FPTError line that names the key, the value and what is allowed:
`optim.lr must be a positive number, got -1`.

The vocabulary below (Count, Dropout, Flag, choice(...), ...) is what schemas are written in; its
descriptions are the "what is allowed" of the messages. No torch here: config errors come in milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from fpt.errors import FPTError

MAX_SEED = 2**23 - 1  # seeds are packed with steps and ranks into 64-bit generator seeds (fpt.seeds)


class Invalid(ValueError):
    """Raised by a schema's own check: with no text the message is 'KEY must be <the field's description>, got
    VALUE'; with text, the text is the whole message."""


class Options(BaseModel):
    """Base of every schema: strict types, unknown keys refused."""

    model_config = ConfigDict(strict=True, extra="forbid")


def rule(base: Any, ok: Callable[[Any], bool], what: str) -> Any:
    """A value of type `base` for which `ok` holds; `what` says which values those are."""

    def check(v):
        if not ok(v):
            raise Invalid()
        return v

    return Annotated[base, AfterValidator(check), Field(description=what)]


def choice(*values: str) -> Any:
    """One of `values` (message: 'a, b or c')."""
    what = ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else values[0]
    return Annotated[Literal[values], Field(description=what)]


def or_null(what: str) -> str:
    return f"{what} or null"


# --- the vocabulary --------------------------------------------------------------------------------------
Count = Annotated[int, Field(ge=1, description="a positive integer")]
CountOrNull = Annotated[Optional[int], Field(ge=1, description=or_null("a positive integer"))]
NonNegative = Annotated[int, Field(ge=0, description="an integer >= 0")]
Positive = Annotated[float, Field(gt=0, description="a positive number")]
NonNegativeNumber = Annotated[float, Field(ge=0, description="a number >= 0")]
Dropout = Annotated[float, Field(ge=0, lt=1, description="in [0, 1)")]
DropoutOrNull = Annotated[Optional[float], Field(ge=0, lt=1, description=or_null("in [0, 1)"))]
Fraction = Annotated[float, Field(gt=0, le=1, description="in (0, 1]")]
Flag = Annotated[bool, Field(description="true or false")]
FlagOrNull = Annotated[Optional[bool], Field(description="true, false or null")]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description=f"an integer in 0..{MAX_SEED}")]
Text = Annotated[str, Field(description="a string")]
TextOrNull = Annotated[Optional[str], Field(description="a string or null")]

Indices = Annotated[Union[int, list[int], Literal["all"], None], Field(description="an index, a list of indices ([0,5]) or all")]
READOUTS = ("last_k", "last", "mean", "flatten")  # last_k: the last k positions; last: the last real token; mean: over real
# tokens; flatten: every position side by side (fixed-length tasks that declare it, task=forecast: One Fits All's head)
Readout = choice(*READOUTS)
SequenceReadout = choice("last", "mean")  # one label per sequence
INIT_MODES = ("pretrained", "random", "stats", "standardized")  # or a toolkit run dir / checkpoint (is_run_path)


def is_run_path(init: str) -> bool:
    """Whether `trunk.init` names a toolkit run directory or checkpoint (its trained trunk) rather than a mode."""
    return "/" in init or init.endswith(".ckpt")


def path_exists(p: Optional[str]) -> bool:
    return p is None or Path(str(p)).expanduser().exists()


def _groups(value: list[str]) -> list[str]:
    from fpt.config.groups import parse_freeze

    try:
        return parse_freeze(value)
    except FPTError as e:
        raise Invalid(str(e)) from None


Groups = Annotated[list[str], AfterValidator(_groups), Field(description="a list of freeze groups")]


# --- checking ---------------------------------------------------------------------------------------------
def check(schema: type[BaseModel], values: dict, at: str = "") -> BaseModel:
    """`values` as an instance of `schema`, or one FPTError line naming the first bad key (`at`: its section)."""
    try:
        return schema.model_validate(values)
    except ValidationError as e:
        raise FPTError(message(e.errors()[0], schema, at)) from None


def message(err: dict, schema: type[BaseModel], at: str = "") -> str:
    """One line for one pydantic error: 'KEY must be WHAT, got VALUE', or a check's own text."""
    names = [p for p in err["loc"] if isinstance(p, str)]
    key = ".".join([at] * bool(at) + _field_path(schema, names))
    got = err.get("input")
    if err["type"] == "value_error" and str(err.get("ctx", {}).get("error", "")):
        return str(err["ctx"]["error"])
    if err["type"] == "extra_forbidden":
        section = key.rpartition(".")[0]
        known = _fields_at(schema, names[:-1])
        return f"unknown option '{key}'; {section + ' takes' if section else 'known'}: {', '.join(known)}"
    if err["type"] == "missing":
        return f"{key} is missing"
    what = describe(schema, names) or err["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    return f"{key} must be {what}, got {got!r}"


def _field_path(schema, names: list[str]) -> list[str]:
    """The loc's keys: down through the schemas to a leaf (or an unknown key); union tags after a leaf dropped."""
    out, cls = [], schema
    for n in names:
        if cls is None:
            break
        out.append(n)
        f = _field(cls, n)
        cls = _model_in(f.annotation) if f else None
    return out


def _field(cls, name: str):
    """The field `name` (or the field whose alias it is) of a schema class, else None."""
    fields = getattr(cls, "model_fields", {}) if isinstance(cls, type) else {}
    return fields.get(name) or next((f for f in fields.values() if f.alias == name), None)


def _fields_at(schema, names: list[str]) -> list[str]:
    cls = schema
    for n in names:
        f = _field(cls, n)
        cls = _model_in(f.annotation) if f else None
    return [f.alias or n for n, f in getattr(cls, "model_fields", {}).items()]


def _model_in(annotation) -> type[BaseModel] | None:
    """The schema class inside a field's annotation (X, Optional[X]), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def describe(schema: type[BaseModel], names: list[str]) -> str | None:
    """The description of the field at `names`: what it allows."""
    what, cls = None, schema
    for n in names:
        f = _field(cls, n)
        if f is not None:
            what, cls = f.description, _model_in(f.annotation)
    return what


def fields(schema: type[BaseModel], at: str = "", skip: tuple[str, ...] = ()) -> list[tuple[str, Any, str]]:
    """(dotted key, default, what it allows) of every leaf option of a schema: `fpt train --help`."""
    out = []
    for name, f in schema.model_fields.items():
        if name in skip:
            continue
        sub = _model_in(f.annotation)
        key = f"{at}.{name}" if at else name
        if sub is not None:
            out += fields(sub, key)
        elif not f.is_required():
            out.append((key, f.default, f.description or ""))
    return out
