"""How an absent modality row enters the model: one type, asked by name,
instead of the option's string compared where it matters."""
from __future__ import annotations

import enum
from typing import Union


class Missing(str, enum.Enum):
    r"""The ``missing`` option of :class:`~native_pyg.nn.NativE`,
    :class:`~native_pyg.nn.ReDAF` and the entity inputs.

    * ``'mask'``: an absent row is left out of the fusion (its weight is 0:
      the in-the-wild setting);
    * ``'zero'``: an absent row is a zero row, fused like a present one;
    * ``'random'``: an absent row is a stand-in drawn from the statistics of
      the present rows.

    A member equals its name as a string (``Missing.MASK == 'mask'``), and
    prints as one."""
    MASK = 'mask'
    RANDOM = 'random'
    ZERO = 'zero'

    @classmethod
    def of(cls, value: Union[str, 'Missing']) -> 'Missing':
        """The member named ``value``; a one-line :class:`ValueError` otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"missing must be one of {tuple(m.value for m in cls)}, "
                             f"got {value!r}") from None

    @property
    def masked(self) -> bool:
        """Absent rows are left out of the fusion."""
        return self is Missing.MASK

    @property
    def drawn(self) -> bool:
        """Absent rows are stand-ins drawn from the present rows' statistics."""
        return self is Missing.RANDOM

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __repr__(self) -> str:
        return repr(self.value)
