"""Budgets, the result cache switch and the cost ledger's location."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import dagster as dg
from pydantic import Field

from vidintel.resources.storage import default_home
from vidintel_pipeline.costs.ledger import CostLedger


class CostControls(dg.ConfigurableResource):
    """Stops a run before it spends more than allowed; reuses cached results; records what was spent."""

    max_usd_per_video: Optional[float] = Field(
        default=None, ge=0, description="Refuse to analyse a video whose estimate exceeds this."
    )
    max_usd_per_project: Optional[float] = Field(
        default=None, ge=0, description="Refuse work that would take a project's total past this."
    )
    use_cache: bool = Field(
        default=True, description="Reuse results of unchanged media, plugin version and options ($0)."
    )
    ledger_path: Optional[str] = Field(default=None, description="SQLite ledger; default $VIDINTEL_HOME/ledger.sqlite.")

    def ledger(self) -> CostLedger:
        return CostLedger(self.ledger_path or Path(default_home()) / "ledger.sqlite")

    def check_budget(self, *, project_id: str, video_id: str, estimate_usd: float, what: str) -> None:
        """Raise :class:`dg.Failure` (not retried) if ``estimate_usd`` more would break a budget."""
        if self.max_usd_per_video is not None:
            spent = self.ledger().get_total_cost(video_id=video_id, project_id=project_id)
            if spent + estimate_usd > self.max_usd_per_video + 1e-9:
                raise dg.Failure(
                    description=f"Budget guard: {what} for {project_id}/{video_id} is estimated at "
                    f"${estimate_usd:.4f}; "
                    f"with ${spent:.4f} already spent on this video that exceeds max_usd_per_video "
                    f"${self.max_usd_per_video:.4f}. Nothing was sent to any provider.",
                    allow_retries=False,
                )
        if self.max_usd_per_project is not None:
            spent = self.ledger().get_total_cost(project_id=project_id)
            if spent + estimate_usd > self.max_usd_per_project + 1e-9:
                raise dg.Failure(
                    description=f"Budget guard: {what} for {project_id}/{video_id} is estimated at "
                    f"${estimate_usd:.4f}; "
                    f"project {project_id} has spent ${spent:.4f} of its max_usd_per_project "
                    f"${self.max_usd_per_project:.4f}. "
                    "Nothing was sent to any provider.",
                    allow_retries=False,
                )
