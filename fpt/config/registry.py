"""A table of named entries that code below it asks and code above it fills: model kinds (fpt/config/kinds.py) and
PEFT methods (fpt/config/methods.py). The entries live beside their code; fpt/models/registry.py registers them."""

from __future__ import annotations

from typing import Generic, TypeVar

from fpt.errors import FPTError

E = TypeVar("E")


class Registry(dict, Generic[E]):
    """name -> entry (an entry has a `name`). `key` is the option it answers (model.kind, peft.method)."""

    def __init__(self, key: str):
        super().__init__()
        self.key = key

    def register(self, *entries: E) -> Registry[E]:
        """Add `entries`; a name given twice is a bug."""
        for e in entries:
            if self.get(e.name, e) is not e:
                raise FPTError(f"{self.key} '{e.name}' is registered twice")
            self[e.name] = e
        return self

    def entry(self, name: str) -> E:
        """The entry registered as `name`; an unknown name is a one-line error naming the known ones."""
        if not self:  # a caller below fpt.models that nothing above has imported: a bug, said plainly
            raise FPTError(f"no {self.key} entries are registered: import fpt.models before checking or building a config")
        if name not in self:
            raise FPTError(f"unknown {self.key} '{name}'; choose one of: {', '.join(self)}")
        return self[name]
