"""The small panel vocabulary every llmobs dashboard is built from (grafana-foundation-sdk builders).

One `Board` per dashboard: it owns the datasource variable, the `model`/`endpoint`/`node` variables,
panel ids and the grid. Panels are described by what differs (title, queries, unit), never copied.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import common as gc
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus as gp
from grafana_foundation_sdk.builders import stat as gstat
from grafana_foundation_sdk.builders import table as gtable
from grafana_foundation_sdk.builders import timeseries as gts
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

from alerts.config import Config

DATASOURCE_VAR = "datasource"
DS = dm.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VAR}}}")


@dataclass(frozen=True)
class Q:
    """One PromQL target: expression, legend, and whether it is an instant (table/stat) query."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


def _target(q: Q, ref: str) -> gp.Dataquery:
    t = gp.Dataquery().expr(q.expr).ref_id(ref).datasource(DS)
    t = t.instant() if q.instant else t.range()
    if q.table:
        t = t.format(pm.PromQueryFormat.TABLE)
    if q.legend:
        t = t.legend_format(q.legend)
    return t


def _refs(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


class Board:
    def __init__(self, c: Config, uid: str, title: str, description: str) -> None:
        self.c = c
        self._next_id = 1
        self.dash = (
            gd.Dashboard(title)
            .uid(c.dashboard_uid_prefix + uid)
            .description(description)
            .tags(list(c.dashboard_tags))
            .refresh(c.dashboard_refresh)
            .time(c.dashboard_time_from, "now")
            .timezone("browser")
            .editable()
            .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        )
        self.dash.with_variable(
            gd.DatasourceVariable(DATASOURCE_VAR).label("Data source").type("prometheus")
        )
        src = c.variable_source_metric
        m, e, n = c.model_label, c.endpoint_label, c.node_label
        self._variable(m, "Model", f"label_values({src}, {m})")
        self._variable(e, "Endpoint", f'label_values({src}{{{m}=~"${m}"}}, {e})')
        self._variable(n, "Node", f'label_values({src}{{{m}=~"${m}"}}, {n})')

    def _variable(self, name: str, label: str, query: str) -> None:
        self.dash.with_variable(
            gd.QueryVariable(name)
            .label(label)
            .datasource(DS)
            .query(query)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        )

    # --- selectors used inside panel queries --------------------------------------------------------
    @property
    def sel_model(self) -> str:
        return f'{self.c.model_label}=~"${self.c.model_label}"'

    @property
    def sel_serving(self) -> str:
        c = self.c
        return (f'{c.model_label}=~"${c.model_label}", {c.endpoint_label}=~"${c.endpoint_label}", '
                f'{c.node_label}=~"${c.node_label}"')

    @property
    def sel_node(self) -> str:
        return f'{self.c.node_label}=~"${self.c.node_label}"'

    # --- layout -------------------------------------------------------------------------------------
    def row(self, title: str) -> Board:
        self.dash.with_row(gd.Row(title).id(self._id()))
        return self

    def _id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    def _common(self, p, title: str, description: str, queries: tuple[Q, ...], unit: str, w: int, h: int):
        p = p.id(self._id()).title(title).datasource(DS).unit(unit).span(w).height(h)
        if description:
            p = p.description(description)
        for q, ref in zip(queries, _refs(len(queries)), strict=True):
            p = p.with_target(_target(q, ref))
        return p

    def timeseries(self, title: str, *queries: Q, unit: str = "short", description: str = "",
                   w: int = 12, h: int = 8, min_: float | None = None, max_: float | None = None,
                   stack: bool = False) -> Board:
        p = self._common(gts.Panel(), title, description, queries, unit, w, h).fill_opacity(10)
        if min_ is not None:
            p = p.min(min_)
        if max_ is not None:
            p = p.max(max_)
        if stack:
            p = p.stacking(gc.StackingConfig().mode(cm.StackingMode.NORMAL)).fill_opacity(40)
        self.dash.with_panel(p)
        return self

    def stat(self, title: str, q: Q, unit: str = "short", description: str = "", w: int = 4,
             h: int = 4, steps: tuple[tuple[float | None, str], ...] = ()) -> Board:
        """`steps`: (from value, colour) pairs, the first from None (−∞), e.g. ((None, "green"), (1, "red"))."""
        q = Q(q.expr, q.legend, instant=True)
        p = self._common(gstat.Panel(), title, description, (q,), unit, w, h)
        if steps:
            p = p.thresholds(gd.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
                             .steps([dm.Threshold(value=v, color=col) for v, col in steps]))
        self.dash.with_panel(p)
        return self

    def table(self, title: str, q: Q, unit: str = "short", description: str = "", w: int = 24,
              h: int = 8) -> Board:
        # One row per series, its labels as columns.
        q = Q(q.expr, q.legend, instant=True, table=True)
        self.dash.with_panel(self._common(gtable.Panel(), title, description, (q,), unit, w, h))
        return self

    def build(self) -> dm.Dashboard:
        return self.dash.build()

