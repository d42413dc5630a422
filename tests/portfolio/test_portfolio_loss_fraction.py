"""The account's loss fractions (daily drawdown, drawdown from peak, decline from start) are
asked every cycle; `loss_fraction` skips the Decimal division when equity is at or above the
reference and must give exactly what the division gives."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import example, given
from hypothesis import strategies as st

from quantum_trader.domain.views import loss_fraction

amounts = st.decimals(min_value=-100, max_value=10**7, places=8, allow_nan=False)


@example(Decimal("100"), Decimal("100"))
@example(Decimal("100.00000001"), Decimal("100"))
@example(Decimal("99.99999999"), Decimal("100"))
@example(Decimal("5"), Decimal("0"))
@given(equity=amounts, reference=amounts)
def test_it_equals_the_division_to_the_last_bit(equity: Decimal, reference: Decimal) -> None:
    divided = 0.0 if reference <= 0 else max(0.0, float(1 - equity / reference))
    assert repr(loss_fraction(equity, reference)) == repr(divided)
