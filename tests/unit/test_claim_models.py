"""`/gpu claim 24h <model>` at the service: an unknown model is refused at once, naming
the models on offer, and nothing is written, queued or sent to the admins (issue 11.1)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.db.repo import LeaseRepo
from bot.domain.allocation import UnknownModel
from tests.fakes.services import Harness, build_harness

H = timedelta(hours=1)


@pytest.mark.parametrize("duration", [24 * H, 96 * H], ids=["granted", "needs-approval"])
def test_an_unknown_model_is_refused_naming_the_models_on_offer(db, duration) -> None:
    kit: Harness = build_harness(db)  # four "NVIDIA H100 80GB HBM3"
    for model in ("h", "a100"):
        with pytest.raises(UnknownModel) as err:
            kit.claims.claim(user_id="U1", duration=duration, model=model)
        assert f"`{model}`" in err.value.message and "`h100`" in err.value.message
    with db.transaction() as s:
        assert LeaseRepo(s).open_for_user("U1") == []
    assert kit.notifier.kinds() == []  # no approval request for a model nobody has
    lease = kit.claims.claim(user_id="U1", duration=duration, model="H100")
    assert lease.gpu_model == "H100"
