"""The status page's HTML: one document with inline CSS, inline SVG and one small inline script.

Nothing is fetched from anywhere but this exporter (an air-gapped cluster has no CDN), and the Content
Security Policy says so: `default-src 'self'`, the inline style and script allowed by their SHA-256 hashes
only. The script polls `fragment_path` every 5 s and swaps the live section in place (no full reload);
without JavaScript the page is still complete, just static. Every label value goes through `esc`.
"""

from __future__ import annotations

import base64
import hashlib
import time

from llmobs.serving.statuspage.svg import Line, esc, fmt, line_chart, sparkline
from llmobs.serving.statuspage.view import EndpointPanel, ModelPanel, PageView

FRAGMENT_PATH = "/status/fragment"
NOT_AVAILABLE = "<span class='na'>not available</span>"

STYLE = """
:root{--fg:#1f2328;--mut:#59636e;--line:#d1d9e0;--bad:#cf222e;--ok:#1a7f37}
body{font-family:system-ui,sans-serif;margin:0 auto;padding:.8rem;max-width:1400px;color:var(--fg)}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.2rem 0 .4rem}h3{font-size:1rem;margin:0 0 .3rem}
.meta,.na,figcaption,.tick{color:var(--mut);font-size:.8rem}.na{font-style:italic}
.models{display:grid;gap:.8rem;grid-template-columns:repeat(auto-fit,minmax(min(100%,540px),1fr))}
.panel{border:1px solid var(--line);border-radius:6px;padding:.6rem}
.facts{display:flex;flex-wrap:wrap;gap:.3rem 1.2rem;font-size:.85rem;margin:.3rem 0}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.85rem}
td,th{border-bottom:1px solid var(--line);padding:.25rem .5rem;text-align:left;white-space:nowrap;vertical-align:middle}
tr.down td{background:#ffebe9}.down .st{color:var(--bad);font-weight:600}.up .st{color:var(--ok)}
figure{margin:.2rem 0}svg.chart{width:100%;height:auto;max-height:170px}
svg polyline{fill:none;stroke-width:1.5}svg.spark polyline{stroke:#0969da}
.tick{font-size:10px;fill:var(--mut);text-anchor:end}.tick.start{text-anchor:start}.axis{stroke:var(--line)}
.served{stroke:#0969da}.door{stroke:#8250df}.forecast{stroke:#bf8700;stroke-dasharray:4 3}
.desired{stroke:#bf8700}.current{stroke:#0969da}.ready{stroke:#1a7f37;stroke-dasharray:2 2}
.band{fill:#bf870033;stroke:none}.marker{stroke:var(--bad);stroke-width:1}
.key{margin-left:.6rem}.key:before{content:'';display:inline-block;width:.8rem;height:.2rem;margin-right:.2rem;
vertical-align:middle;background:currentColor}.key.served,.key.current{color:#0969da}.key.door{color:#8250df}
.key.forecast,.key.desired,.key.band{color:#bf8700}.key.ready{color:#1a7f37}.key.marker{color:var(--bad)}
@media (max-width:700px){body{padding:.4rem}td,th{padding:.2rem .3rem}.facts{font-size:.8rem}}
"""

SCRIPT = """
(function(){var live=document.getElementById('live');
function tick(){fetch('""" + FRAGMENT_PATH + """',{cache:'no-store'}).then(function(r){
if(!r.ok)throw new Error(r.status);return r.text();}).then(function(t){live.innerHTML=t;
document.body.dataset.updated=String(Date.now());}).catch(function(){
document.body.dataset.stale='1';});}
setInterval(tick,5000);})();
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Inline style and script allowed by hash only; everything else only from this exporter; no framing.
CONTENT_SECURITY_POLICY = (f"default-src 'self'; style-src {_sha256(STYLE)}; script-src {_sha256(SCRIPT)}; "
                           "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                           "frame-ancestors 'none'")
# The same page, saved to a file (llmobs simulate --html): no script, nothing to connect to.
FILE_CONTENT_SECURITY_POLICY = f"default-src 'none'; style-src {_sha256(STYLE)}"


def _pct(v: float | None) -> str:
    return fmt(v, " %", 100, 1)


def _model_panel(p: ModelPanel, view: PageView) -> str:
    h = p.history
    facts = [f"<span>{p.endpoints} endpoint(s)</span>"]
    demand = replicas = "<div class='chart na' data-points='0'>no history yet</div>"
    if h is not None:
        v = h.values
        lines = [Line("served req/s", v["served"], "served")]
        if any(x == x for x in v["door"]):
            lines.append(Line("door req/s", v["door"], "door"))
        else:
            facts.append(f"<span>door demand: {NOT_AVAILABLE}</span>")
        has_fc = any(x == x for x in v["forecast"])
        if has_fc:
            lines.append(Line("forecast", v["forecast"], "forecast"))
        demand = line_chart(h.times, lines, band=(v["forecast"], v["upper"]) if has_fc else None,
                            title="demand (req/s)", unit="")
        rep = [Line("current", v["current"], "current")]
        if any(x == x for x in v["desired"]):
            rep.insert(0, Line("desired", v["desired"], "desired"))
        if any(x == x for x in v["ready"]):
            rep.append(Line("Ready", v["ready"], "ready"))
        else:
            facts.append(f"<span>Ready replicas (HPA): {NOT_AVAILABLE}</span>")
        replicas = line_chart(h.times, rep, markers=p.cold_start_times, title="replicas")
    f = p.forecast
    if f is not None:
        facts.append(f"<span>forecast +{f.horizon_seconds:.0f} s: {fmt(f.point)} req/s (≤ {fmt(f.upper)} at "
                     f"q{f.quantile:g}) · desired {esc(f.desired_replicas if f.desired_replicas is not None else '–')}"
                     f" · {esc(f.forecaster)}{' · fallback: ' + esc(f.fallback_reason) if f.fallback_reason else ''}"
                     "</span>")
    elif not view.has_forecast:
        facts.append(f"<span>forecast: {NOT_AVAILABLE}</span>")
    facts.append(f"<span>cold start p90: {fmt(p.cold_start_p90_seconds, ' s', 1, 0)}</span>")
    facts.append(f"<span>TTFT SLO attained: {_pct(p.slo_attainment)} · burn rate {fmt(p.burn_rate, '×', 1, 1)}"
                 "</span>")
    fb = p.feedback
    if fb is not None:
        def ratio(n: int, d: int) -> str:
            return _pct(n / d) if d else "–"
        facts.append(f"<span>feedback: {ratio(fb.negative, fb.total)} negative of {fb.total} · TTFT over SLO "
                     f"{ratio(fb.above_slo[1], fb.above_slo[0])} · under {ratio(fb.below_slo[1], fb.below_slo[0])}"
                     "</span>")
    elif not view.has_feedback:
        facts.append(f"<span>feedback: {NOT_AVAILABLE}</span>")
    if p.triggers:
        rows = "".join(
            f"<tr><td>{esc(t.signal)}</td><td>{fmt(t.target, '', 1, 3)}</td><td>{fmt(t.value, '', 1, 3)}</td>"
            f"<td>{'–' if t.active is None else ('yes' if t.active else 'no')}</td>"
            f"<td>{view.built_at - t.at:.0f} s ago</td><td>{esc(t.error)}</td></tr>" for t in p.triggers)
        keda = (f"<div class='scroll'><table class='keda'><tr><th>KEDA trigger</th><th>target</th><th>answer</th>"
                f"<th>active</th><th>when</th><th>error</th></tr>{rows}</table></div>")
    else:
        keda = f"<p class='meta'>KEDA triggers: {'none asked yet' if view.has_triggers else NOT_AVAILABLE}</p>"
    return (f"<section class='panel model' data-model='{esc(p.model)}'><h3>{esc(p.model)}</h3>"
            f"<div class='facts'>{''.join(facts)}</div>{demand}{replicas}{keda}</section>")


def _endpoint_row(e: EndpointPanel, view: PageView) -> str:
    v = e.history.values if e.history is not None else {}
    def spark(name: str, label: str) -> str:
        return sparkline(v.get(name, ()), label=label)
    node = esc(e.node) or "–"
    if e.gpu_model:
        node += f"<br><span class='meta'>{esc(e.gpu_model)}</span>"
    if e.gpu is not None:
        gpu = (f"{_pct(e.gpu.utilization)} util · {_pct(e.gpu.memory_used_ratio)} mem · "
               f"{fmt(e.gpu.power_watts, ' W', 1, 0)}")
    else:
        gpu = NOT_AVAILABLE
    bottleneck = esc(e.bottleneck) if e.bottleneck else ("–" if view.has_bottleneck else NOT_AVAILABLE)
    return (f"<tr><td>{esc(e.model)}</td><td>{esc(e.endpoint)}</td><td>{node}</td>"
            f"<td>{_pct(e.kv)}<br>{spark('kv', 'KV cache')}</td>"
            f"<td>{fmt(e.waiting, '', 1, 0)} / {fmt(e.running, '', 1, 0)}<br>{spark('waiting', 'waiting')}</td>"
            f"<td>{fmt(e.ttft_p90, ' s', 1, 3)}<br>{spark('ttft_p90', 'TTFT p90')}</td>"
            f"<td>{fmt(e.tpot_p90, ' ms', 1000, 1)}<br>{spark('tpot_p90', 'TPOT p90')}</td>"
            f"<td class='bottleneck'>{bottleneck}</td><td>{gpu}</td></tr>")


def _targets(view: PageView) -> str:
    down = sum(1 for t in view.targets if not t.up)
    rows = "".join(
        f"<tr class='{'up' if t.up else 'down'}'><td>{esc(t.endpoint)}</td><td class='st'>"
        f"{'up' if t.up else 'down'}</td><td>{fmt(t.scrape_duration_seconds, ' ms', 1000, 0)}</td>"
        f"<td>{t.consecutive_failures}</td><td>{esc(t.last_error_kind)} {esc(t.last_error[:160])}</td>"
        f"<td>{esc(', '.join(t.missing_series)) or '–'}</td></tr>" for t in view.targets)
    return (f"<h2>Targets ({len(view.targets)}, {down} down)</h2><div class='scroll'><table id='targets'><tr>"
            "<th>endpoint</th><th>status</th><th>scrape</th><th>failures</th><th>last error</th>"
            f"<th>missing vLLM series</th></tr>{rows}</table></div>")


def render_fragment(view: PageView) -> str:
    """The live section: what the page's script swaps in every few seconds."""
    age = view.built_at - view.state_time
    models = "".join(_model_panel(p, view) for p in view.models) or "<p class='na'>no model has signals yet</p>"
    endpoints = "".join(_endpoint_row(e, view) for e in view.endpoints)
    rendered = time.strftime("%H:%M:%S", time.gmtime(view.built_at))
    return (f"<p class='meta'>state from {age:.1f} s ago · window {view.window_seconds:g} s · cycle "
            f"{fmt(view.cycle_seconds, ' ms', 1000, 0)} · rendered {rendered} UTC</p>"
            f"{_targets(view)}<h2>Models</h2><div class='models'>{models}</div>"
            f"<h2>Endpoints ({len(view.endpoints)})</h2><div class='scroll'><table id='signals'><tr><th>model</th>"
            "<th>endpoint</th><th>node / GPU</th><th>KV cache</th><th>waiting / running</th><th>TTFT p90</th>"
            "<th>TPOT p90</th><th>bottleneck</th><th>GPU util · mem · power</th></tr>"
            f"{endpoints}</table></div>")


def document(title: str, body: str, *, script: bool, csp: str | None = None) -> str:
    """A whole HTML document around `body` (already escaped markup) with the page's CSS; `csp` goes in a meta
    tag (for a saved file, which has no response headers; the server sends its policy as a header)."""
    js = f"<script>{SCRIPT}</script>" if script else ""
    meta = f"<meta http-equiv='Content-Security-Policy' content=\"{esc(csp)}\">" if csp else ""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>{meta}"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>{body}{js}</body></html>")


def render_page(view: PageView, fragment: str | None = None) -> str:
    """The whole status page around `fragment` (rendered from `view` when not given); its script keeps the
    live section current."""
    links = ("<a href='/metrics'>/metrics</a> · <a href='/api/v1/signals'>/api/v1/signals</a> · "
             "<a href='/healthz'>/healthz</a>")
    body = (f"<h1>llmobs</h1><p class='meta'>vLLM fleet signals, demand forecast and autoscaling answers · {links}"
            f"</p><main id='live'>{fragment if fragment is not None else render_fragment(view)}</main>")
    return document("llmobs", body, script=True)
