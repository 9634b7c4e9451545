"""The energy managers' dashboard: a Flask server with Dash mounted on it.

`create_app(registry, store, users_file, ...)` returns the `dash.Dash` app;
`serve(app, host, port)` runs it in a thread with a werkzeug server that `shutdown()`
stops (what `civicwatt demo` and `civicwatt serve` use).

Access control lives on the server:

* every request except the login page and Dash's static bundles needs a signed
  session cookie (Flask `session`, signed with the secret key); pages redirect to
  `/login`, callbacks and downloads answer 401;
* the session names the user and a fingerprint of their password hash; the users
  file is re-read when it changes, so removing a user or changing a password ends
  their sessions at the next request;
* each callback and download re-reads the user and scopes its data with
  `dashboard.access` (admin: everything; region manager: their region's subtree;
  institution user: their institution). Asking for anything else gets the
  "no access" message (callbacks) or 403 (downloads), whatever the request says.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import dash
import flask
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate
from werkzeug.serving import WSGIRequestHandler, make_server

from core.registry import Registry
from core.vocab import CATEGORIES
from core.yamlfile import ConfigError
from dashboard import integrations
from dashboard.access import (
    Forbidden,
    alert_visible,
    institution_meters,
    require_institution,
    require_region,
    scoped_registry,
)
from dashboard.auth import User, authenticate, load_users
from dashboard.data import INDICATORS, KG_PER_T, DataService
from dashboard.i18n import norm_lang, t
from dashboard.pages import (
    KEEP,
    daily_figure,
    fmt,
    forbidden,
    gauge,
    hourly_figure,
    indicator_table,
    meter_tree,
    no_data,
    quality_table,
    ranking_columns,
    ranking_controls,
    ranking_rows,
    ranking_table,
    subitem_split,
    ytd_figure,
)
from dashboard.ranking import DEFAULT_INDICATOR, PAGE_SIZE, RankQuery, ranked

SESSION_HOURS = 12  # a working day; then log in again
LOGIN_MAX_FAILURES = 5  # failed logins per user and address ...
LOGIN_WINDOW_S = 300  # ... within 5 minutes lock that pair for the rest of the window
SECRET_FILE = "dashboard-secret.key"
# overview totals -> quotas.config target indicators
TARGET_KEYS = {"tce": "energy_tce", "water_m3": "water_m3", "t_co2": "co2_t", "kgce_per_m2": "kgce_per_m2",
               "kgce_per_person": "kgce_per_person", "water_m3_per_person": "water_m3_per_person"}
RANKED_CACHE = 64  # sorted ranking results kept for paging (each at most a few MB)
DAILY_DAYS = 60  # days shown in the institution's daily chart
MAX_DOWNLOAD_DAYS = 3660  # ten years of daily rows at most per download
PUBLIC_PREFIXES = ("/login", "/_dash-component-suites/", "/_dash-layout", "/_dash-dependencies", "/assets/",
                   "/_favicon.ico", "/_reload-hash")


class UserDirectory:
    """The users file, re-read when its modification time changes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._stamp: float | None = None
        self._users: dict[str, User] = {}
        self._lock = threading.Lock()

    def users(self) -> dict[str, User]:
        stamp = self.path.stat().st_mtime_ns if self.path.exists() else None
        with self._lock:
            if stamp != self._stamp:
                self._users = load_users(self.path) if stamp is not None else {}
                self._stamp = stamp
            return self._users


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _secret_key(secret_key: str | None, data_dir: Path | None, users_file: Path) -> str:
    """The given key, $CIVICWATT_SECRET_KEY, or a random key kept (mode 0600) next to
    the data so sessions survive restarts."""
    if secret_key:
        return secret_key
    if os.environ.get("CIVICWATT_SECRET_KEY"):
        return os.environ["CIVICWATT_SECRET_KEY"]
    path = (data_dir or users_file.parent) / SECRET_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key)
    return key


LOGIN_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>CivicWatt</title>
<link rel="stylesheet" href="/assets/style.css"></head>
<body class="login"><form method="post" action="/login" class="login-box">
<h1>{title}</h1>
<p class="lang"><a href="/login?lang=zh">中文</a> | <a href="/login?lang=en">English</a></p>
{error}
<label>{user_label}<input id="username" name="username" autocomplete="username" required></label>
<label>{pw_label}<input id="password" name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="lang" value="{lang}"><input type="hidden" name="next" value="{next}">
<button id="login-button" type="submit">{button}</button>
</form></body></html>"""


def _esc(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def create_app(registry: Registry, store: Any, users_file: str | Path, quotas_path: str | Path | None = None,
               data_dir: str | Path | None = None, secret_key: str | None = None,
               now: Callable[[], pd.Timestamp] | None = None, cache_ttl_s: float = 300.0,
               mv_dirs: list[str | Path] | None = None) -> dash.Dash:
    """The dashboard for `registry` over `store`.

    users_file: the YAML written by `civicwatt users` (see dashboard.auth);
    quotas_path: quotas.yaml (dual-control targets, quota standards), optional;
    data_dir: where alerts (the outbox) live and the session key is kept;
    now: a clock (tests); cache_ttl_s: how long year tables are reused;
    mv_dirs: folders of savings-verification project files (default: `mv/` next to
    the registry file and in data_dir).
    """
    users_file = Path(users_file)
    data_path = Path(data_dir) if data_dir is not None else None
    directory = UserDirectory(users_file)
    quotas = integrations.Quotas(quotas_path, registry)
    quotas.config()  # a bad quota file fails here, with every problem, not in a callback
    if mv_dirs is None:
        mv_dirs = [p / "mv" for p in (Path(registry.source).parent if Path(registry.source).is_file() else None,
                                      data_path) if p is not None]
    mv = integrations.MVProjects([Path(d) for d in mv_dirs], registry, store)
    service = DataService(registry, store, quotas=quotas.config, cache_ttl_s=cache_ttl_s,
                          **({"now": now} if now is not None else {}))
    region_name = {r.id: r.name for r in registry.regions}
    failures: dict[tuple[str, str], list[float]] = {}

    server = flask.Flask(__name__)
    server.secret_key = _secret_key(secret_key, data_path, users_file)
    server.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                         PERMANENT_SESSION_LIFETIME=SESSION_HOURS * 3600)

    def current_user() -> User | None:
        name = flask.session.get("user")
        if not name:
            return None
        user = directory.users().get(name)
        if user is None or flask.session.get("fp") != _fingerprint(user):
            return None
        return user

    # -- login / logout / guard ------------------------------------------------------
    @server.before_request
    def guard() -> Any:
        path = flask.request.path
        if path.startswith(PUBLIC_PREFIXES):
            return None
        if current_user() is not None:
            return None
        if path.startswith(("/_dash-update-component", "/download/")):
            return flask.Response("login required", status=401)
        return flask.redirect("/login?" + urlencode({"next": path}))

    @server.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        req = flask.request
        lang = norm_lang(req.values.get("lang"))
        nxt = req.values.get("next", "/")
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"
        error = ""
        if req.method == "POST":
            name = req.form.get("username", "").strip()
            key = (req.remote_addr or "-", name)
            recent = [x for x in failures.get(key, []) if time.monotonic() - x < LOGIN_WINDOW_S]
            if len(recent) >= LOGIN_MAX_FAILURES:
                error = t("login_locked", lang)
            else:
                user = authenticate(directory.users(), name, req.form.get("password", ""))
                if user is not None:
                    failures.pop(key, None)
                    flask.session.clear()
                    flask.session.permanent = True
                    flask.session["user"] = user.name
                    flask.session["fp"] = _fingerprint(user)
                    resp = flask.redirect(nxt)
                    return resp
                failures[key] = [*recent, time.monotonic()]
                error = t("login_failed", lang)
        body = LOGIN_PAGE.format(
            lang=lang, title=_esc(t("app_title", lang)), user_label=t("username", lang),
            pw_label=t("password", lang), button=t("login", lang), next=_esc(nxt),
            error=f'<p class="error" id="login-error">{_esc(error)}</p>' if error else "")
        return flask.Response(body, status=401 if error else 200, mimetype="text/html")

    @server.route("/logout")
    def logout() -> Any:
        flask.session.clear()
        return flask.redirect("/login")

    # -- downloads -----------------------------------------------------------------------
    def _user_or_401() -> User:
        user = current_user()
        if user is None:
            flask.abort(401)
        return user

    def _csv_response(frame: pd.DataFrame, filename: str) -> flask.Response:
        data = frame.to_csv(index=False).encode("utf-8-sig")  # BOM: Excel opens Chinese names right
        return flask.Response(data, mimetype="text/csv",
                              headers={"Content-Disposition": f"attachment; filename={filename}"})

    @server.route("/download/ranking.csv")
    def download_ranking() -> Any:
        user = _user_or_401()
        args = flask.request.args
        try:
            q = _rank_query(user, args.get("year"), args.get("region") or None, args.get("category") or None,
                            args.get("indicator") or DEFAULT_INDICATOR, args.get("search") or "", [], 0, 10**9)
        except Forbidden:
            flask.abort(403)
        except ValueError:
            flask.abort(400)
        rows = ranked(service.ranking_table(q[1]), q[0])
        rows = rows.assign(region_name=rows["region"].map(region_name), indicator=q[0].indicator, year=q[1])
        return _csv_response(rows, f"ranking-{q[1]}-{q[0].indicator}.csv")

    @server.route("/download/institution/<institution_id>/daily.csv")
    def download_daily(institution_id: str) -> Any:
        user = _user_or_401()
        try:
            inst = require_institution(user, registry, institution_id)
        except Forbidden:
            flask.abort(403)
        end = service.today() + pd.Timedelta(days=1)
        start = end - pd.Timedelta(days=min(max(_int_arg("days", DAILY_DAYS), 1), MAX_DOWNLOAD_DAYS))
        ids = [m.id for m in institution_meters(registry, inst)]
        c = service.consumption("day", start, end, ids)
        out = c[["meter_id", "period_start", "quantity", "estimated_share"]].copy()
        out["unit"] = out["meter_id"].map({m.id: m.unit for m in registry.meters})
        return _csv_response(out, f"{inst}-daily.csv")

    @server.route("/download/ledger")
    def download_ledger() -> Any:
        user = _user_or_401()
        year = _int_arg("year", service.current_year() - 1)
        fmt_ = flask.request.args.get("format", "xlsx")
        if fmt_ not in ("xlsx", "csv"):
            flask.abort(400)
        visible = None if user.role == "admin" else user.institution_ids(registry)
        data = integrations.ledger_bytes(registry, visible, store, year, fmt_, quotas.config())
        mime = "text/csv" if fmt_ == "csv" else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return flask.send_file(io.BytesIO(data), mimetype=mime, as_attachment=True,
                               download_name=f"carbon-ledger-{year}.{fmt_}")

    @server.route("/download/report")
    def download_report() -> Any:
        user = _user_or_401()
        month = flask.request.args.get("month", "")
        try:
            period = pd.Period(month, freq="M")
        except ValueError:
            flask.abort(400)
        scoped = registry if user.role == "admin" else scoped_registry(registry, user.institution_ids(registry))
        data = integrations.report_bytes(scoped, store, str(period), quotas.config())
        return flask.send_file(io.BytesIO(data), as_attachment=True, download_name=f"monthly-report-{period}.xlsx",
                               mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    def _int_arg(name: str, default: int) -> int:
        raw = flask.request.args.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            flask.abort(400)

    # -- shared query logic ------------------------------------------------------------------
    def _years() -> list[int]:
        cur = service.current_year()
        return list(range(cur, cur - 5, -1))

    def _rank_query(user: User, year: Any, region: str | None, category: str | None, indicator: str,
                    search: str, sort_by: list[dict] | None, page: int, page_size: int) -> tuple[RankQuery, int]:
        """The query a user may run: region must be theirs; rows limited to what they see."""
        year_i = int(year) if year not in (None, "") else service.current_year()
        if indicator not in INDICATORS:
            raise ValueError(indicator)
        if category is not None and category not in CATEGORIES:
            raise ValueError(category)
        regions: frozenset[str] | None
        if region:
            regions = frozenset(registry.region_subtree(require_region(user, registry, region)))
        elif user.role == "region":
            regions = frozenset(user.region_ids(registry))
        elif user.role == "institution" and user.scope in registry.institution_by_id:
            # peers: the same category in the institution's own region (rows limited below)
            regions = frozenset(registry.region_subtree(registry.institution_by_id[user.scope].region))
        else:
            regions = None  # admin: the whole portfolio
        visible = None if user.role == "admin" else frozenset(user.institution_ids(registry))
        sort = tuple((str(s.get("column_id")), str(s.get("direction", "asc"))) for s in (sort_by or []))
        sort = tuple(("level" if c == "level_name" else "region" if c == "region_name" else
                      "category" if c == "category_name" else c, d) for c, d in sort)
        return RankQuery(indicator=indicator, regions=regions, category=category, search=search or "",
                         sort_by=sort or (("rank", "asc"),), page=page, page_size=page_size,
                         visible=visible), year_i

    # -- Dash ---------------------------------------------------------------------------------
    app = dash.Dash(__name__, server=server, suppress_callback_exceptions=True, title="CivicWatt",
                    update_title=None, assets_folder=str(Path(__file__).parent / "assets"))
    app.layout = html.Div([
        dcc.Location(id="url", refresh="callback-nav"),
        dcc.Store(id="lang", storage_type="local"),
        html.Header(className="top", children=[
            html.Div(id="nav", className="nav"),
            html.Div(className="right", children=[
                html.Button("中文", id="lang-zh", className="lang-button"),
                html.Button("English", id="lang-en", className="lang-button"),
                html.Span(id="who", className="who"),
                html.A(id="logout", href="/logout"),
            ]),
        ]),
        html.Main(id="page"),
    ])

    @app.callback(Output("lang", "data"), Input("lang-zh", "n_clicks"), Input("lang-en", "n_clicks"),
                  prevent_initial_call=True)
    def switch_language(_zh: int | None, _en: int | None) -> str:
        return "en" if ctx.triggered_id == "lang-en" else "zh"

    @app.callback(Output("nav", "children"), Output("who", "children"), Output("logout", "children"),
                  Input("lang", "data"), Input("url", "pathname"))
    def header(lang: str | None, _path: str | None) -> tuple:
        lang = norm_lang(lang)
        user = current_user()
        if user is None:
            raise PreventUpdate
        links = [("/", "nav_overview"), ("/ranking", "nav_ranking"), ("/institution", "nav_institution"),
                 ("/alerts", "nav_alerts"), ("/reports", "nav_reports"), ("/mv", "nav_mv")]
        nav = [html.Span(t("app_title", lang), className="brand")] + [
            dcc.Link(t(key, lang), href=href, id=f"nav-{key.removeprefix('nav_')}") for href, key in links]
        who = f"{t('signed_in_as', lang)}: {user.name} ({t('role_' + user.role, lang)})"
        return nav, who, t("logout", lang)

    @app.callback(Output("page", "children"), Input("url", "pathname"), Input("lang", "data"))
    def render(pathname: str | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        user = current_user()
        if user is None:
            return forbidden(lang)
        path = (pathname or "/").rstrip("/") or "/"
        try:
            if path == "/":
                return overview_page(user, lang)
            if path == "/ranking":
                return ranking_page(user, lang)
            if path == "/institution":
                return institution_picker(user, lang)
            if path.startswith("/institution/"):
                return institution_page(user, path.removeprefix("/institution/"), lang)
            if path == "/alerts":
                return alerts_page(user, lang)
            if path == "/reports":
                return reports_page(user, lang)
            if path == "/mv":
                return mv_page(user, lang)
        except Forbidden:
            return forbidden(lang)
        return html.Div(t("not_found", lang), className="empty")

    # -- overview --------------------------------------------------------------------------------
    def _default_region(user: User) -> str | None:
        if user.role == "region":
            return user.scope
        if user.role == "admin":
            roots = [r.id for r in registry.regions if r.parent is None]
            return roots[0] if roots else None
        return None

    def overview_page(user: User, lang: str) -> html.Div:
        regions = sorted(user.region_ids(registry), key=lambda r: (len(registry.region_ancestors(r)), r))
        return html.Div(id="overview", children=[
            html.Div(className="controls", children=[
                html.Label([t("region", lang), dcc.Dropdown(
                    id="ov-region", **KEEP, options=[{"label": region_name[r], "value": r} for r in regions],
                    value=_default_region(user), clearable=False, disabled=not regions)]),
                html.Label([t("year", lang), dcc.Dropdown(
                    id="ov-year", **KEEP, options=[{"label": str(y), "value": y} for y in _years()],
                    value=service.current_year(), clearable=False)]),
            ]),
            dcc.Loading(html.Div(id="ov-body")),
        ])

    @app.callback(Output("ov-body", "children"), Input("ov-region", "value"), Input("ov-year", "value"),
                  State("lang", "data"))
    def overview_body(region: str | None, year: int | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        user = current_user()
        if user is None:
            return forbidden(lang)
        try:
            if region:
                require_region(user, registry, region)
                insts = {i.id for i in registry.institutions if i.region in registry.region_subtree(region)}
            else:
                insts = user.institution_ids(registry)
            insts &= user.institution_ids(registry)
        except Forbidden:
            return forbidden(lang)
        try:
            year = int(year or service.current_year())
        except (ValueError, TypeError):
            raise PreventUpdate from None
        scope = f"region:{region}" if region else (f"institution:{user.scope}" if user.role == "institution" else None)
        return overview_content(insts, scope, year, lang)

    def scope_targets(scope: str | None, year: int) -> dict[str, dict]:
        """Targets of exactly this scope (region:R or institution:I) by indicator:
        {indicator: {limit, actual, projected, status}} from quotas.evaluate."""
        if scope is None:
            return {}
        status = service.target_status(year)
        rows = status[status["scope"] == scope]
        return {r["indicator"]: r for r in rows.to_dict("records")}

    def overview_content(insts: set[str], scope: str | None, year: int, lang: str) -> Any:
        table = service.indicators(year)
        table = table[table["institution_id"].isin(insts)]
        if table["kgce"].notna().sum() == 0:
            return no_data(lang)
        months = service.monthly_energy(year)
        months = months[months["institution_id"].isin(insts)]
        end = service.year_bounds(year)[1]
        totals = {
            "tce": float(table["kgce"].sum()) / KG_PER_T,
            "water_m3": float(table["water_m3"].sum()),
            "t_co2": float(table["t_co2"].sum()),
        }
        floor = float(table["floor_area_m2"].sum())
        occ = float(table["occupants"].sum())
        targets = scope_targets(scope, year)
        # without a target: the same projection quotas.evaluate gives a target's scope
        own = service.year_end_projection(insts, year).set_index("indicator")["projected"]
        limit = {k: (targets[k]["limit"] if k in targets else None) for k in TARGET_KEYS.values()}
        gauges = []
        projections = {}
        for key, label, unit in (("tce", "ind_tce", "tce"), ("water_m3", "ind_water_m3", "m³"),
                                 ("t_co2", "ind_t_co2", "t")):
            tkey = TARGET_KEYS[key]
            if tkey in targets and pd.notna(targets[tkey]["projected"]):
                projected = float(targets[tkey]["projected"])  # the alerts' projection (quotas.evaluate)
            else:
                projected = float(own[tkey]) if pd.notna(own[tkey]) else None
            projections[key] = projected
            gauges.append(dcc.Graph(id=f"gauge-{key}", figure=gauge(t(label, lang), totals[key], limit[tkey],
                                                                     projected, unit, lang),
                                    config={"displayModeBar": False}, className="gauge"))
        intensities = html.Table(className="grid", id="ov-intensities", children=[
            html.Tbody([
                html.Tr([html.Td(t("institutions_count", lang)), html.Td(str(int(table["kgce"].notna().sum())),
                                                                        className="num")]),
                html.Tr([html.Td(t("ind_kgce_per_m2", lang)),
                         html.Td(fmt(totals["tce"] * KG_PER_T / floor if floor else np.nan, 2),
                                 className="num"),
                         html.Td(_target_text(limit["kgce_per_m2"], lang))]),
                html.Tr([html.Td(t("ind_kgce_per_person", lang)),
                         html.Td(fmt(totals["tce"] * KG_PER_T / occ if occ else np.nan, 2), className="num"),
                         html.Td(_target_text(limit["kgce_per_person"], lang))]),
                html.Tr([html.Td(t("ind_water_m3_per_person", lang)),
                         html.Td(fmt(totals["water_m3"] / occ if occ else np.nan, 2), className="num"),
                         html.Td(_target_text(limit["water_m3_per_person"], lang))]),
            ])])
        # YTD curve (tce) with projection
        by_month = (months.groupby("period_start")["kgce"].sum() / KG_PER_T).sort_index()
        # each month's cumulative total at its end (today for the running month)
        month_end = (pd.DatetimeIndex(by_month.index).tz_convert(service.tz) + pd.DateOffset(months=1))
        month_end = np.minimum(month_end.tz_localize(None), end.tz_localize(None))
        cum = pd.DataFrame({"month": pd.DatetimeIndex(month_end), "cumulative": by_month.cumsum().to_numpy()})
        ytd = dcc.Graph(id="ov-ytd", figure=ytd_figure(cum, projections["tce"], limit["energy_tce"], year, lang))
        # monthly trend by energy type
        import plotly.express as px

        trend = months.groupby(["period_start", "energy"], as_index=False)["kgce"].sum()
        trend = trend[trend["kgce"] > 0]
        trend["energy_name"] = trend["energy"].map(lambda e: t(f"en_{e}", lang))
        trend["month"] = pd.DatetimeIndex(trend["period_start"]).tz_localize(None)
        fig_trend = px.bar(trend, x="month", y="kgce", color="energy_name", title=t("trend_month", lang),
                           labels={"kgce": "kgce", "month": "", "energy_name": ""}, template="plotly_white")
        fig_trend.update_xaxes(dtick="M1", tickformat="%Y-%m")
        split_e = trend.groupby("energy_name", as_index=False)["kgce"].sum()
        fig_split_e = px.pie(split_e, names="energy_name", values="kgce", hole=0.4,
                             title=f"{t('split_energy', lang)} (kgce)")
        by_cat = table.groupby("category", as_index=False)["kgce"].sum()
        by_cat["name"] = by_cat["category"].map(lambda c: t(f"cat_{c}", lang))
        fig_split_c = px.pie(by_cat, names="name", values="kgce", hole=0.4,
                             title=f"{t('split_category', lang)} (kgce)")
        return html.Div([
            html.H2(t("totals", lang)),
            html.Div(gauges, className="row"),
            intensities,
            ytd,
            dcc.Graph(id="ov-trend", figure=fig_trend),
            html.Div([dcc.Graph(id="ov-split-energy", figure=fig_split_e, className="half"),
                      dcc.Graph(id="ov-split-category", figure=fig_split_c, className="half")], className="row"),
        ])

    def _target_text(value: float | None, lang: str) -> str:
        return f"{t('target', lang)}: {fmt(value, 2)}" if value else t("no_target", lang)

    # -- ranking -----------------------------------------------------------------------------------
    def ranking_page(user: User, lang: str) -> html.Div:
        regions = sorted(user.region_ids(registry), key=lambda r: (len(registry.region_ancestors(r)), r))
        return html.Div(id="ranking", children=[
            # the last complete year by default: rankings compare whole years
            ranking_controls(lang, [(r, region_name[r]) for r in regions], list(CATEGORIES), _years(),
                             service.current_year() - 1),
            html.Div(id="rank-count", className="count"),
            ranking_table(lang),
        ])

    @app.callback(
        Output("rank-table", "data"), Output("rank-table", "columns"), Output("rank-table", "page_count"),
        Output("rank-table", "page_current"), Output("rank-count", "children"), Output("rank-export", "href"),
        Input("rank-region", "value"), Input("rank-category", "value"), Input("rank-year", "value"),
        Input("rank-indicator", "value"), Input("rank-search", "value"), Input("rank-table", "page_current"),
        Input("rank-table", "page_size"), Input("rank-table", "sort_by"), State("lang", "data"))
    def update_ranking(region: str | None, category: str | None, year: int | None, indicator: str | None,
                       search: str | None, page: int | None, page_size: int | None, sort_by: list | None,
                       lang: str | None) -> tuple:
        return ranking_callback(current_user(), region, category, year, indicator, search, page, page_size,
                                sort_by, lang, ctx.triggered_id if ctx else None)

    def ranking_callback(user: User | None, region: str | None, category: str | None, year: Any,
                         indicator: str | None, search: str | None, page: int | None, page_size: int | None,
                         sort_by: list | None, lang: str | None, trigger: Any = None) -> tuple:
        lang = norm_lang(lang)
        indicator = indicator or DEFAULT_INDICATOR
        if user is None:
            raise PreventUpdate
        if trigger not in (None, "rank-table"):
            page = 0  # a new filter starts at the first page
        try:
            q, year_i = _rank_query(user, year, region, category, indicator, search or "", sort_by, int(page or 0),
                                    int(page_size or PAGE_SIZE))
        except (Forbidden, ValueError):
            return [], ranking_columns(lang, indicator), 1, 0, t("forbidden", lang), "#"
        rows, total = ranked_page(year_i, q)
        pages = max(1, -(-total // q.page_size))
        params = {"year": year_i, "indicator": indicator, "search": search or ""}
        if region:
            params["region"] = region
        if category:
            params["category"] = category
        return (ranking_rows(rows, registry, lang), ranking_columns(lang, indicator), pages, q.page,
                f"{total} {t('rows_found', lang)}", "/download/ranking.csv?" + urlencode(params))

    ranked_cache: OrderedDict[tuple, tuple[int, pd.DataFrame]] = OrderedDict()
    ranked_lock = threading.Lock()

    def ranked_page(year: int, q: RankQuery) -> tuple[pd.DataFrame, int]:
        """One page of the query; the full sorted result of the last RANKED_CACHE
        queries is kept (per year table), so turning pages is a slice."""
        table = service.ranking_table(year)
        key = (year, replace(q, page=0))
        with ranked_lock:
            hit = ranked_cache.get(key)
            if hit is not None and hit[0] == id(table):
                ranked_cache.move_to_end(key)
                rows = hit[1]
            else:
                rows = None
        if rows is None:
            rows = ranked(table, q)
            with ranked_lock:
                ranked_cache[key] = (id(table), rows)
                while len(ranked_cache) > RANKED_CACHE:
                    ranked_cache.popitem(last=False)
        size = max(1, q.page_size)
        return rows.iloc[q.page * size:(q.page + 1) * size], len(rows)

    app.ranking_callback = ranking_callback  # the benchmark times this without HTTP
    app.ranked_cache = ranked_cache

    # -- institution ------------------------------------------------------------------------------------
    def institution_picker(user: User, lang: str) -> html.Div:
        visible = sorted(user.institution_ids(registry))
        if len(visible) == 1:
            return institution_page(user, visible[0], lang)
        by_id = registry.institution_by_id
        return html.Div([
            html.H2(t("choose_institution", lang)),
            dcc.Dropdown(id="inst-picker", options=[{"label": f"{by_id[i].name} ({i})", "value": i}
                                                    for i in visible], placeholder=t("search_name", lang)),
        ])

    @app.callback(Output("url", "pathname"), Input("inst-picker", "value"), prevent_initial_call=True)
    def pick_institution(inst: str | None) -> str:
        if not inst:
            raise PreventUpdate
        return f"/institution/{inst}"

    def institution_page(user: User, institution_id: str, lang: str) -> html.Div:
        inst_id = require_institution(user, registry, institution_id)
        inst = registry.institution_by_id[inst_id]
        meters = institution_meters(registry, inst_id)
        quality = service.data_quality(inst_id)
        today = service.today()
        main_ids = [m.id for m in meters if m.parent is None]
        daily = service.consumption("day", today - pd.Timedelta(days=DAILY_DAYS), today + pd.Timedelta(days=1),
                                    main_ids)
        year = service.current_year()
        ystart, yend = service.year_bounds(year)
        ytd = service.consumption("year", ystart, yend, [m.id for m in meters])
        # indicators of the last complete year: quota standards are annual
        table = service.ranking_table(year - 1)
        row = table[table["institution_id"] == inst_id]
        row_s = row.iloc[0] if len(row) else None
        est = float(np.nanmean(quality["estimated_share"])) if quality["estimated_share"].notna().any() else np.nan
        offline = int(quality["offline"].sum())
        return html.Div(id="institution", children=[
            dcc.Store(id="inst-id", data=inst_id),
            html.H2(f"{inst.name} ({inst.id})", id="inst-title"),
            html.P(f"{region_name.get(inst.region, inst.region)} · {t('cat_' + inst.category, lang)} · "
                   f"{t('floor_area', lang)} {fmt(inst.floor_area_m2, 0)} · {t('heated_area', lang)} "
                   f"{fmt(inst.heated_area_m2, 0)} · {t('occupants', lang)} {inst.occupants}"),
            html.A(t("export_csv", lang), href=f"/download/institution/{inst_id}/daily.csv", className="button",
                   id="inst-export"),
            html.Div(className="row", children=[
                html.Div(className="half", children=[html.H3(t("meters", lang)), meter_tree(meters, quality, lang)]),
                html.Div(className="half", children=[
                    html.H3(t("data_quality", lang)),
                    html.P(f"{t('estimated_share', lang)}: {fmt(est * 100, 1)} % · {t('offline', lang)}: "
                           f"{offline}/{len(meters)}", id="quality-summary"),
                    quality_table(quality, lang, service.tz)]),
            ]),
            dcc.Graph(id="inst-daily", figure=daily_figure(daily, lang)),
            html.Div(className="controls", children=[
                html.Label([t("date", lang), dcc.DatePickerSingle(
                    id="inst-hour-date", **KEEP, date=(today - pd.Timedelta(days=1)).date().isoformat(),
                    display_format="YYYY-MM-DD")]),
            ]),
            dcc.Graph(id="inst-hourly"),
            html.Div(className="row", children=[
                dcc.Graph(id="inst-subitems", figure=subitem_split(ytd, meters, lang), className="half"),
                html.Div(className="half", children=[
                    html.H3(f"{t('indicators', lang)} ({year - 1})"),
                    indicator_table(row_s, service.levels_of(row) if len(row) else None, lang)]),
            ]),
        ])

    @app.callback(Output("inst-hourly", "figure"), Input("inst-hour-date", "date"), State("inst-id", "data"),
                  State("lang", "data"))
    def hourly(date: str | None, inst_id: str | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        user = current_user()
        try:
            inst = require_institution(user, registry, inst_id)
        except Forbidden:
            return {"layout": {"title": {"text": t("forbidden", lang)}}}
        try:
            day = pd.Timestamp(date or service.today().date().isoformat()).normalize().tz_localize(service.tz)
        except (ValueError, TypeError):
            raise PreventUpdate from None
        meters = institution_meters(registry, inst)
        hourly = service.consumption("hour", day, day + pd.Timedelta(days=1),
                                     [m.id for m in meters if m.energy == "electricity"])
        return hourly_figure(hourly, meters, lang)

    # -- alerts ------------------------------------------------------------------------------------------
    def visible_alerts(user: User) -> list[dict]:
        outbox = integrations.outbox(data_path)
        if outbox is None:
            return []
        return [a for a in outbox.list_alerts(open_only=False) if alert_visible(user, registry, a)]

    def alerts_page(user: User, lang: str) -> html.Div:
        if integrations.outbox(data_path) is None:
            return html.Div(t("not_available", lang), className="empty")
        return html.Div(id="alerts", children=[html.Div(id="alerts-body", children=alerts_body(user, lang))])

    def alerts_body(user: User, lang: str) -> list:
        alerts = visible_alerts(user)
        open_ = [a for a in alerts if a.get("status") == "open"]
        past = [a for a in alerts if a.get("status") != "open"]

        def table(rows: list[dict], with_ack: bool, table_id: str) -> html.Table:
            head = html.Tr([html.Th(x) for x in (t("severity", lang), t("scope", lang), t("period", lang),
                                                  t("message", lang), t("first_seen", lang), "")])
            body = []
            for a in rows:
                if a.get("acknowledged_by"):
                    action: Any = f"{t('acknowledged', lang)}: {a['acknowledged_by']}"
                elif with_ack:
                    action = html.Button(t("acknowledge", lang), id={"type": "ack", "key": a["key"]},
                                         className="ack")
                else:
                    action = a.get("resolution") or ""
                inst = registry.institution_by_id.get(str(a.get("institution_id") or ""))
                body.append(html.Tr([
                    html.Td(t(f"sev_{a.get('severity', '')}", lang), className=f"sev-{a.get('severity', '')}"),
                    html.Td(dcc.Link(inst.name, href=f"/institution/{inst.id}") if inst else
                            str(a.get("scope", ""))),
                    html.Td(a.get("period", "")), html.Td(a.get("message_zh" if lang == "zh" else "message_en", "")),
                    html.Td(str(a.get("first_seen", ""))[:16]), html.Td(action)], className="alert-row"))
            return html.Table([html.Thead(head), html.Tbody(body)], className="grid", id=table_id)

        return [html.H2(t("open_alerts", lang)), table(open_, True, "alerts-open") if open_ else no_data(lang),
                html.H2(t("past_alerts", lang)), table(past, False, "alerts-past") if past else no_data(lang)]

    @app.callback(Output("alerts-body", "children"), Input({"type": "ack", "key": ALL}, "n_clicks"),
                  State("lang", "data"), prevent_initial_call=True)
    def acknowledge(clicks: list, lang: str | None) -> Any:
        lang = norm_lang(lang)
        user = current_user()
        trig = ctx.triggered_id
        clicks = clicks if isinstance(clicks, list) else [clicks]
        if user is None or not isinstance(trig, dict) or not any(clicks):
            raise PreventUpdate
        key = str(trig.get("key"))
        outbox = integrations.outbox(data_path)
        if outbox is None:
            raise PreventUpdate
        match = [a for a in outbox.list_alerts(open_only=True) if a.get("key") == key]
        if not match or not alert_visible(user, registry, match[0]):
            return [forbidden(lang), *alerts_body(user, lang)]
        outbox.acknowledge(key, user.name)
        return alerts_body(user, lang)

    # -- reports ----------------------------------------------------------------------------------------
    def reports_page(user: User, lang: str) -> html.Div:
        last_month = (service.today().tz_localize(None).to_period("M") - 1)
        months = [str(last_month - k) for k in range(24)]
        years = [y for y in _years()]
        return html.Div(id="reports", children=[
            html.H2(t("monthly_report", lang)),
            html.Div(className="controls", children=[
                html.Label([t("month", lang), dcc.Dropdown(id="rep-month", **KEEP, options=months, value=months[0],
                                                           clearable=False)]),
                html.A(t("download", lang), id="rep-download", href=f"/download/report?month={months[0]}",
                       className="button"),
            ]),
            html.H2(t("carbon_ledger", lang)),
            html.Div(className="controls", children=[
                html.Label([t("year", lang), dcc.Dropdown(id="ledger-year", **KEEP, options=years, value=years[1],
                                                          clearable=False)]),
                html.A(f"{t('download', lang)} (xlsx)", id="ledger-xlsx", href=f"/download/ledger?year={years[1]}",
                       className="button"),
                html.A(f"{t('download', lang)} (csv)", id="ledger-csv",
                       href=f"/download/ledger?year={years[1]}&format=csv", className="button"),
            ]),
        ])

    @app.callback(Output("rep-download", "href"), Input("rep-month", "value"))
    def report_link(month: str | None) -> str:
        return "/download/report?" + urlencode({"month": month or ""})

    @app.callback(Output("ledger-xlsx", "href"), Output("ledger-csv", "href"), Input("ledger-year", "value"))
    def ledger_links(year: int | None) -> tuple[str, str]:
        return f"/download/ledger?year={year}", f"/download/ledger?year={year}&format=csv"

    # -- savings verification ------------------------------------------------------------------------------
    def visible_projects(user: User) -> list[dict]:
        """Projects whose every institution the user may see (a project without a
        resolvable institution is for administrators only)."""
        out = []
        for p in mv.projects():
            insts = p["institutions"]
            if user.role == "admin" or (insts and all(user.can_see(registry, i) for i in insts)):
                out.append(p)
        return out

    def mv_page(user: User, lang: str) -> html.Div:
        projects = visible_projects(user)
        if not projects:
            return html.Div(t("no_mv_projects", lang), className="empty", id="mv")
        return html.Div(id="mv", children=[
            html.H2(t("nav_mv", lang)),
            html.Div(className="controls", children=[
                html.Label([t("project", lang), dcc.Dropdown(
                    id="mv-project", **KEEP, options=[{"label": f"{p['name']} ({p['id']})", "value": p["id"]}
                                              for p in projects], value=projects[0]["id"], clearable=False)]),
                html.A(t("download", lang) + " (xlsx)", id="mv-download", href="#", className="button"),
            ]),
            dcc.Loading(html.Div(id="mv-body")),
        ])

    @app.callback(Output("mv-body", "children"), Output("mv-download", "href"), Input("mv-project", "value"),
                  State("lang", "data"))
    def mv_body(project_id: str | None, lang: str | None) -> tuple:
        lang = norm_lang(lang)
        user = current_user()
        match = [p for p in visible_projects(user)] if user is not None else []
        match = [p for p in match if p["id"] == project_id]
        if not match:
            return forbidden(lang), "#"
        p = match[0]
        if p["error"]:
            return html.Pre(p["error"], className="error"), "#"
        try:
            result = mv.result(p["file"])
        except (ConfigError, ValueError) as exc:  # data do not allow a verification: show every problem
            return html.Pre(str(exc), className="error", id="mv-error"), "#"
        return mv_content(result, lang), f"/download/mv/{p['id']}.xlsx"

    def mv_content(result: Any, lang: str) -> html.Div:
        from verification.report import chart_frame

        s = result.summary
        keys = ["model", "n", "r2", "cvrmse", "nmbe", "meets_ashrae14", "adjusted_baseline", "reporting_actual",
                "avoided", "avoided_fraction", "avoided_low90", "avoided_high90", "normalized_savings", "payment_cny"]
        rows = [html.Tr([html.Td(t(f"mv_{k}", lang)), html.Td(_mv_value(s.get(k)), className="num")],
                        id={"type": "mv-row", "key": k}) for k in keys if k in s]
        chart = chart_frame(result)
        fig = go.Figure()
        for col, name in (("actual", t("actual", lang)), ("baseline_model", t("baseline_model", lang)),
                          ("adjusted_baseline", t("adjusted_baseline", lang))):
            fig.add_trace(go.Scatter(x=chart["month"], y=chart[col], mode="lines+markers", name=name))
        fig.update_layout(title=f"{t('nav_mv', lang)} ({result.project.unit or ''})", template="plotly_white",
                          height=360, margin={"l": 40, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h"})
        return html.Div([
            html.Table([html.Tbody(rows)], className="grid", id="mv-summary"),
            dcc.Graph(id="mv-chart", figure=fig),
            html.Ul([html.Li(w_) for w_ in result.warnings], className="warnings") if result.warnings else None,
        ])

    def _mv_value(v: Any) -> str:
        if isinstance(v, float):
            return fmt(v, 4) if abs(v) < 10 else fmt(v, 1)
        return str(v)

    @server.route("/download/mv/<project_id>.xlsx")
    def download_mv(project_id: str) -> Any:
        user = _user_or_401()
        match = [p for p in visible_projects(user) if p["id"] == project_id and not p["error"]]
        if not match:
            flask.abort(403)
        try:
            data = mv.report_bytes(match[0]["file"])
        except (ConfigError, ValueError) as exc:  # the verification's own message, as text
            return flask.Response(str(exc), status=422, mimetype="text/plain")
        return flask.send_file(io.BytesIO(data), as_attachment=True, download_name=f"mv-{project_id}.xlsx",
                               mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    app.service = service  # for tests and the demo: cache control
    app.users = directory
    return app


class _QuietHandler(WSGIRequestHandler):
    """No line per request on the console (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class ServerHandle:
    """A dashboard served from a background thread; `shutdown()` stops it."""

    def __init__(self, app: dash.Dash, host: str, port: int, quiet: bool = True):
        self._server = make_server(host, port, app.server, threaded=True,
                                   request_handler=_QuietHandler if quiet else WSGIRequestHandler)
        self.host = host
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="civicwatt-dashboard", daemon=True)

    def start(self) -> ServerHandle:
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()


def serve(app: dash.Dash, host: str = "127.0.0.1", port: int = 8050, quiet: bool = True) -> ServerHandle:
    """Serve `app` from a thread (port 0: any free port); returns the running handle.
    `quiet`: no access log line per request."""
    return ServerHandle(app, host, port, quiet).start()
