"""``dataprice live SCENARIO``: watch the repeated market round by round in a browser.

The first replicate's market is built once (:func:`~dataprice.experiment.replicate.
prepare_replicate`: the buyer's game, the values, the market); then one Mesa
:class:`~dataprice.agents.model.MarketModel` per payment rule steps in lockstep, with the
same seeds the run uses, so round ``t`` here is round ``t`` of ``dataprice run``. A small
web app on a loopback address shows the chosen rule's reports against costs and its
payments per seller, and every rule's welfare and payments round by round. Controls: the
rule shown, the bidding strategy and Hedge's learning rate (a change restarts the rounds),
and stepping one or ten rounds.

The server binds 127.0.0.1 (or ``::1``) only, and its page loads nothing from elsewhere:
plain JavaScript and SVG served by the app itself, under a ``default-src 'self'``
content-security policy. Requests are checked: a bad request gets a 400 and a one-line
JSON error, and the market is not touched.
"""

from __future__ import annotations

import json
import math
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from dataprice.agents.model import MarketModel
from dataprice.agents.strategies import make_strategy
from dataprice.errors import ScenarioError
from dataprice.experiment.replicate import prepare_replicate
from dataprice.rng import Stream, child_sequence
from dataprice.scenario import Scenario

#: Strategies the page offers (those that need no settings beyond the scenario's).
STRATEGIES = ("truthful", "markup", "random_markup", "best_response", "hedge")
#: Most rounds one request may step.
MAX_STEP = 200
#: Most rounds a session keeps (then it must be reset).
MAX_ROUNDS = 5000
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class LiveMarket:
    """The scenario's first replicate, stepped round by round under every payment rule."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.names = scenario.buyer.seller_names(scenario.sellers)
        costs = scenario.buyer.seller_costs(scenario, self.names)
        self.costs = np.asarray(costs if costs is not None else scenario.sellers.draw_costs(scenario.seed, self.names),
                                dtype=np.float64)
        self.prepared = prepare_replicate(scenario, self.costs, 0, names=self.names)
        self.rules = list(scenario.market.payment_rules)
        self.strategy: str = scenario.bidding.strategy
        self.learning_rate = float(scenario.bidding.learning_rate)
        self.lock = threading.Lock()
        self.models: dict[str, MarketModel] = {}
        self.reset()

    def reset(self, strategy: str | None = None, learning_rate: float | None = None) -> None:
        """Start the rounds again (every rule) with ``strategy`` and Hedge's ``learning_rate``."""
        if strategy is not None:
            self.strategy = strategy
        if learning_rate is not None:
            self.learning_rate = float(learning_rate)
        bidding = self.scenario.bidding
        params = {**bidding.strategy_params(), "learning_rate": self.learning_rate}
        self.models = {}
        for rule in self.rules:
            strategies = [make_strategy(self.strategy, **params) for _ in self.costs]
            stream = child_sequence(self.scenario.seed, 0, Stream.BIDDING)  # as dataprice run's replicate 0
            self.models[rule] = MarketModel(self.prepared.environment, rule, strategies, seed=stream,
                                            budget=self.scenario.market.budget, exit_after=bidding.exit_after)

    @property
    def rounds(self) -> int:
        return len(next(iter(self.models.values())).outcomes)

    def step(self, rounds: int = 1) -> None:
        """Play ``rounds`` more rounds under every rule."""
        for model in self.models.values():
            model.run(rounds)

    def state(self) -> dict[str, Any]:
        """Everything the page draws, as plain JSON types (NaN and infinities as null)."""
        history: dict[str, dict[str, list]] = {}
        last: dict[str, dict[str, list]] = {}
        for rule, model in self.models.items():
            history[rule] = {
                "welfare": [_num(o.welfare) for o in model.outcomes],
                "total_paid": [_num(o.total_paid) for o in model.outcomes],
                "best_welfare": [_num(w) for w in model.best_welfare],
            }
            if model.outcomes:
                o = model.outcomes[-1]
                last[rule] = {"bids": [_num(b) for b in o.bids], "payments": [_num(p) for p in o.payments],
                              "selected": [bool(x) for x in o.selected]}
        return {
            "scenario": self.scenario.name, "round": self.rounds, "rules": self.rules, "sellers": list(self.names),
            "costs": [_num(c) for c in self.costs], "strategy": self.strategy, "strategies": list(STRATEGIES),
            "learning_rate": self.learning_rate, "history": history, "last": last,
        }


def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


class _Handler(BaseHTTPRequestHandler):
    server: _LiveServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no line per request
        return

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        live = self.server.live
        if self.path == "/":
            self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
        elif self.path in ("/favicon.svg", "/favicon.ico"):
            self._send(HTTPStatus.OK, FAVICON.encode(), "image/svg+xml")
        elif self.path == "/app.js":
            self._send(HTTPStatus.OK, APP_JS.encode(), "text/javascript; charset=utf-8")
        elif self.path == "/api/state":
            with live.lock:
                self._json(HTTPStatus.OK, live.state())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {self.path[:80]}"})

    def do_POST(self) -> None:  # noqa: N802
        live = self.server.live
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= 10_000:
                raise ValueError("the request body must be at most 10,000 bytes")
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            with live.lock:
                if self.path == "/api/step":
                    rounds = body.get("rounds", 1)
                    if not isinstance(rounds, int) or isinstance(rounds, bool) or not 1 <= rounds <= MAX_STEP:
                        raise ValueError(f"rounds must be an integer in 1..{MAX_STEP}")
                    if live.rounds + rounds > MAX_ROUNDS:
                        raise ValueError(f"at most {MAX_ROUNDS} rounds per session; reset to start again")
                    live.step(rounds)
                elif self.path == "/api/reset":
                    strategy = body.get("strategy", live.strategy)
                    rate = body.get("learning_rate", live.learning_rate)
                    if strategy not in STRATEGIES:
                        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
                    if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 < rate <= 10_000:
                        raise ValueError("learning_rate must be a number in (0, 10000]")
                    live.reset(strategy, float(rate))
                else:
                    self._json(HTTPStatus.NOT_FOUND, {"error": f"no such action: {self.path[:80]}"})
                    return
                self._json(HTTPStatus.OK, live.state())
        except (ValueError, UnicodeDecodeError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc).splitlines()[0][:200]})


class _LiveServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], live: LiveMarket) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.live = live


def check_address(host: str, port: int) -> None:
    """The live view listens on a loopback ``host`` and a port in 0..65535 (0: a free one)."""
    if host not in LOOPBACK:
        raise ScenarioError(f"--host: the live view listens on a loopback address only ({', '.join(LOOPBACK)}); "
                            f"got {host[:60]!r}")
    if not 0 <= port <= 65535:
        raise ScenarioError(f"--port: a port is 0..65535 (0: any free one); got {port}")


def serve(live: LiveMarket, host: str = "127.0.0.1", port: int = 0) -> _LiveServer:
    """A server for ``live`` on a loopback ``host`` (``port`` 0: a free one); call
    ``serve_forever()`` on it (or run it in a thread) and ``shutdown()`` to stop."""
    check_address(host, port)
    return _LiveServer(("127.0.0.1" if host == "localhost" else host, port), live)


FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect x="2" y="8" width="3" height="6" '
           'fill="#1f77b4"/><rect x="7" y="4" width="3" height="10" fill="#2ca02c"/><rect x="12" y="2" width="3" '
           'height="12" fill="#d62728"/></svg>')

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dataprice live</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
.controls { display: flex; gap: 1em; align-items: end; flex-wrap: wrap; margin-bottom: 1em; }
label { display: flex; flex-direction: column; font-size: 12px; color: #555; }
button { padding: 0.4em 0.9em; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1.2em; }
svg { width: 100%; height: 260px; background: #fafafa; border: 1px solid #ddd; }
.error { color: #a00; }
</style></head>
<body>
<h1>dataprice live: <span id="scenario"></span></h1>
<p>Round <b id="round">0</b>. Each rule settles the same market in lockstep; a change of strategy or learning
rate starts the rounds again.</p>
<div class="controls">
  <label>rule shown <select id="rule"></select></label>
  <label>bidding strategy <select id="strategy"></select></label>
  <label>Hedge learning rate <input id="rate" type="number" min="0.001" step="0.1"></label>
  <button id="apply">apply and restart</button>
  <button id="step">step 1 round</button>
  <button id="step10">step 10 rounds</button>
  <span id="message" class="error"></span>
</div>
<div class="plots">
  <figure><figcaption>Reports against costs (<span class="rulename"></span>, last round)</figcaption>
    <svg id="bids" viewBox="0 0 600 260"></svg></figure>
  <figure><figcaption>Payments per seller (<span class="rulename"></span>, last round)</figcaption>
    <svg id="payments" viewBox="0 0 600 260"></svg></figure>
  <figure><figcaption>Welfare per round, every rule</figcaption>
    <svg id="welfare" viewBox="0 0 600 260"></svg></figure>
  <figure><figcaption>Total paid per round, every rule</figcaption>
    <svg id="paid" viewBox="0 0 600 260"></svg></figure>
</div>
<script src="/app.js"></script>
</body></html>
"""

APP_JS = r"""
"use strict";
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"];
const NS = "http://www.w3.org/2000/svg";
let state = null;

function el(name, attrs, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function clear(svg) { while (svg.firstChild) svg.removeChild(svg.firstChild); }

function scale(values) {
  const finite = values.filter(v => v !== null && Number.isFinite(v));
  const lo = Math.min(0, ...finite), hi = Math.max(1e-9, ...finite);
  return [lo, hi === lo ? lo + 1 : hi];
}

function bars(svg, series, names) {
  clear(svg);
  const [lo, hi] = scale(series.flatMap(s => s.values));
  const W = 600, H = 260, left = 40, bottom = 30, n = names.length, group = (W - left - 10) / Math.max(n, 1);
  const y = v => H - bottom - (v - lo) / (hi - lo) * (H - bottom - 10);
  svg.appendChild(el("line", {x1: left, x2: W - 10, y1: y(0), y2: y(0), stroke: "#999"}));
  svg.appendChild(el("text", {x: 2, y: 14, "font-size": 11}, hi.toPrecision(3)));
  series.forEach((s, k) => {
    const width = group / (series.length + 1);
    s.values.forEach((v, j) => {
      if (v === null) return;
      const x = left + j * group + k * width + width / 2, top = Math.min(y(v), y(0));
      svg.appendChild(el("rect", {x: x, y: top, width: width * 0.9, height: Math.abs(y(v) - y(0)),
                                   fill: s.color, "class": "bar"}));
    });
  });
  names.forEach((name, j) => svg.appendChild(el("text", {x: left + j * group + 2, y: H - 12, "font-size": 10},
                                                  name.length > 10 ? name.slice(0, 9) + "…" : name)));
  series.forEach((s, k) => svg.appendChild(el("text", {x: W - 150, y: 16 + 14 * k, fill: s.color, "font-size": 12},
                                                s.label)));
}

function lines(svg, byRule, key) {
  clear(svg);
  const rules = Object.keys(byRule);
  const all = rules.flatMap(r => byRule[r][key]);
  const [lo, hi] = scale(all);
  const W = 600, H = 260, left = 40, bottom = 20, n = Math.max(1, ...rules.map(r => byRule[r][key].length));
  const x = t => left + (n <= 1 ? 0 : t / (n - 1) * (W - left - 10));
  const y = v => H - bottom - (v - lo) / (hi - lo) * (H - bottom - 10);
  svg.appendChild(el("text", {x: 2, y: 14, "font-size": 11}, hi.toPrecision(3)));
  svg.appendChild(el("text", {x: 2, y: H - bottom, "font-size": 11}, lo.toPrecision(3)));
  rules.forEach((rule, k) => {
    const pts = byRule[rule][key].map((v, t) => v === null ? null : `${x(t).toFixed(1)},${y(v).toFixed(1)}`)
      .filter(p => p !== null);
    const color = COLORS[k % COLORS.length];
    if (pts.length) svg.appendChild(el("polyline", {points: pts.join(" "), fill: "none", stroke: color,
                                                    "stroke-width": 2, "class": "series", "data-rule": rule}));
    svg.appendChild(el("text", {x: W - 110, y: 16 + 14 * k, fill: color, "font-size": 12}, rule));
  });
}

function draw() {
  document.getElementById("scenario").textContent = state.scenario;
  document.getElementById("round").textContent = state.round;
  const ruleSelect = document.getElementById("rule");
  if (!ruleSelect.options.length) {
    state.rules.forEach(r => ruleSelect.add(new Option(r, r)));
    state.strategies.forEach(s => document.getElementById("strategy").add(new Option(s, s)));
  }
  document.getElementById("strategy").value = state.strategy;
  document.getElementById("rate").value = state.learning_rate;
  const rule = ruleSelect.value || state.rules[0];
  document.querySelectorAll(".rulename").forEach(n => n.textContent = rule);
  const last = state.last[rule] || {bids: state.costs.map(() => null), payments: state.costs.map(() => null)};
  bars(document.getElementById("bids"),
       [{values: state.costs, color: "#999", label: "cost"}, {values: last.bids, color: "#1f77b4", label: "report"}],
       state.sellers);
  bars(document.getElementById("payments"), [{values: last.payments, color: "#2ca02c", label: "payment"}],
       state.sellers);
  lines(document.getElementById("welfare"), state.history, "welfare");
  lines(document.getElementById("paid"), state.history, "total_paid");
}

async function call(path, body) {
  const options = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
                                             body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const payload = await response.json();
  const message = document.getElementById("message");
  if (!response.ok) { message.textContent = payload.error; return; }
  message.textContent = "";
  state = payload;
  draw();
}

document.getElementById("step").addEventListener("click", () => call("/api/step", {rounds: 1}));
document.getElementById("step10").addEventListener("click", () => call("/api/step", {rounds: 10}));
document.getElementById("rule").addEventListener("change", draw);
document.getElementById("apply").addEventListener("click", () => call("/api/reset", {
  strategy: document.getElementById("strategy").value,
  learning_rate: Number(document.getElementById("rate").value)}));
call("/api/state");
"""
