"""Dashboard users: the users file, the `civicwatt users` verb, roles and scopes."""

from __future__ import annotations

import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicwatt.cli import main
from core import users as auth
from core.access import Forbidden, alert_visible, require_institution, require_region, scoped_registry
from core.yamlfile import ConfigError
from tests import support_dashboard_world as w


def test_users_verb_round_trip(tmp_path, capsys):
    f = tmp_path / "users.yaml"
    assert main(["init", str(tmp_path)]) == 0  # the sample registry: regions hebei, sjz ...; HB-0001 ...
    reg = ["--registry", str(tmp_path / "civicwatt.yaml")]
    assert main(["users", "add", "alice", "--file", str(f), "--role", "region", "--scope", "sjz",
                 "--password", "alice-secret-1", *reg]) == 0
    assert main(["users", "add", "bob", "--file", str(f), "--role", "institution", "--scope", "HB-0001",
                 "--generate", *reg]) == 0
    out = capsys.readouterr().out
    generated = out.strip().splitlines()[-1].removeprefix("password: ")
    assert len(generated) >= 16
    text = f.read_text(encoding="utf-8")
    assert "alice-secret-1" not in text and generated not in text and "scrypt:" in text
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    users = auth.load_users(f)
    assert auth.authenticate(users, "bob", generated).scope == "HB-0001"
    assert auth.authenticate(users, "alice", "wrong-password") is None
    assert auth.authenticate(users, "nobody", "alice-secret-1") is None
    assert main(["users", "list", "--file", str(f)]) == 0
    assert "alice\tregion\tsjz" in capsys.readouterr().out
    assert main(["users", "passwd", "alice", "--file", str(f), "--password", "alice-secret-2"]) == 0
    users = auth.load_users(f)
    assert auth.authenticate(users, "alice", "alice-secret-2") is not None
    assert auth.authenticate(users, "alice", "alice-secret-1") is None
    assert main(["users", "remove", "bob", "--file", str(f)]) == 0
    assert set(auth.load_users(f)) == {"alice"}
    # refused: duplicate, missing role, short password, unknown user
    assert main(["users", "add", "alice", "--file", str(f), "--role", "admin", "--password", "x" * 12]) == 1
    assert main(["users", "add", "carol", "--file", str(f), "--password", "x" * 12]) == 2
    assert main(["users", "add", "carol", "--file", str(f), "--role", "admin", "--password", "short"]) == 2
    assert main(["users", "remove", "nobody", "--file", str(f)]) == 1


@pytest.mark.parametrize(("argv", "said"), [
    (["add", "carol", "--role", "region", "--scope", "nowhere"], "no region 'nowhere' in"),
    (["add", "carol", "--role", "institution", "--scope", "HB-9999"], "no institution 'HB-9999' in"),
    (["add", "carol", "--role", "institution", "--scope", "region:bd/category:hospital"],
     "no institution 'region:bd/category:hospital'"),
    (["add", "carol", "--role", "region", "--scope", "HB-0001"], "'HB-0001' is an institution in"),
    (["add", "carol", "--role", "institution", "--scope", "bd"], "use --role region"),
    (["add", "carol", "--role", "region"], "a region user needs --scope"),
    (["passwd", "alice", "--scope", "nowhere"], "no region 'nowhere' in"),
    (["passwd", "alice", "--role", "institution"], "'sjz' is a region in"),
])
def test_users_scope_must_name_a_region_or_institution_of_the_registry(tmp_path, capsys, argv, said):
    """`users add --scope nowhere` was accepted (and the user could then see nothing)."""
    f = tmp_path / "users.yaml"
    assert main(["init", str(tmp_path)]) == 0
    reg = ["--registry", str(tmp_path / "civicwatt.yaml"), "--users", str(f)]
    assert main(["users", "add", "alice", "--role", "region", "--scope", "sjz", "--password", "p" * 12, *reg]) == 0
    before = f.read_bytes()
    capsys.readouterr()
    assert main(["users", *argv, "--password", "q" * 12, *reg]) == 2
    err = capsys.readouterr().err
    assert said in err and "nothing was written" in err, err
    assert f.read_bytes() == before  # nothing written
    assert set(auth.load_users(f)) == {"alice"}


def test_ensure_admin_creates_once(tmp_path):
    f = tmp_path / "users.yaml"
    pw = auth.ensure_admin(f)
    assert pw and len(pw) >= 16
    assert auth.authenticate(auth.load_users(f), "admin", pw).role == "admin"
    assert auth.ensure_admin(f) is None  # an administrator exists: nothing changes
    assert auth.authenticate(auth.load_users(f), "admin", pw) is not None
    other = tmp_path / "other.yaml"
    assert auth.ensure_admin(other) != pw  # random, not a default


def test_bad_users_file_names_file_line_and_field(tmp_path):
    f = tmp_path / "users.yaml"
    f.write_text("users:\n  ok: {role: admin, scope: null, password: 'scrypt:1$x$y'}\n"
                 "  bad: {role: boss, scope: x, password: 'scrypt:1$x$y'}\n"
                 "  nohash: {role: region, scope: sjz, password: plain}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        auth.load_users(f)
    msgs = [str(p) for p in err.value.problems]
    assert any(m.startswith(f"{f}:3: users.bad.role") for m in msgs)
    assert any(m.startswith(f"{f}:4: users.nohash.password") for m in msgs)


def test_roles_and_scopes():
    reg = w.registry()
    admin = auth.User("a", "admin", None)
    region = auth.User("r", "region", "sjz")
    inst = auth.User("i", "institution", "HB-0005")
    sjz = {i.id for i in reg.institutions if i.region == "sjz"}
    assert admin.institution_ids(reg) == {i.id for i in reg.institutions}
    assert region.institution_ids(reg) == sjz and len(sjz) == 4
    assert inst.institution_ids(reg) == {"HB-0005"}
    assert region.region_ids(reg) == {"sjz"} and admin.region_ids(reg) >= {"hebei", "sjz", "bd"}
    assert require_institution(inst, reg, "HB-0005") == "HB-0005"
    for user, target in ((inst, "HB-0001"), (region, "HB-0005"), (None, "HB-0001"), (admin, "NOPE")):
        with pytest.raises(Forbidden):
            require_institution(user, reg, target)
    with pytest.raises(Forbidden):
        require_region(region, reg, "hebei")  # the parent of one's own region
    assert auth.User("x", "region", "nowhere").institution_ids(reg) == set()
    assert alert_visible(region, reg, {"institution_id": "HB-0001"})
    assert not alert_visible(region, reg, {"institution_id": "HB-0005"})
    assert alert_visible(region, reg, {"scope": "region:sjz/category:school"})
    assert not alert_visible(region, reg, {"scope": "region:hebei"})
    assert not alert_visible(inst, reg, {"scope": "region:bd"})


@settings(max_examples=25, deadline=None)
@given(st.sets(st.sampled_from([f"HB-{k:04d}" for k in range(1, 9)])))
def test_scoped_registry_holds_only_the_chosen(ids):
    reg = w.registry()
    sub = scoped_registry(reg, ids)
    assert {i.id for i in sub.institutions} == ids
    assert {m.institution for m in sub.meters} <= ids
    assert {m.id for m in sub.meters} == {m.id for m in reg.meters if m.institution in ids}
    assert set(sub.institution_by_id) == ids  # no stale lookup maps from the original
    for i in sub.institutions:  # every region up the tree is kept
        assert set(reg.region_ancestors(i.region)) <= set(sub.region_by_id)


def test_quota_file_bad_at_start_fails_bad_later_keeps_last(tmp_path):
    import os

    from dashboard.integrations import Quotas

    reg = w.registry()
    bad = tmp_path / "bad.yaml"
    bad.write_text("standards:\n  - id: x\n    category: school\n    kgce_per_person: {constraint: oops}\n",
                   encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        Quotas(bad, reg).config()
    assert str(bad) in str(err.value)
    good = w.write_quotas(tmp_path / "quotas.yaml", reg)
    q = Quotas(good, reg)
    first = q.config()
    assert [s.id for s in first.standards] == ["general", "hospital"]
    good.write_text(bad.read_text(encoding="utf-8"), encoding="utf-8")
    os.utime(good, ns=(1, 1))  # a different modification time, whatever the clock
    assert q.config() is first


def test_access_functions_take_any_user_object():
    """core.access is framework-neutral: an API client with a role and a scope
    gets the same answers as a dashboard user."""
    from types import SimpleNamespace

    from core import access

    reg = w.registry()
    admin = SimpleNamespace(role="admin", scope=None)
    mgr = SimpleNamespace(role="region", scope="sjz")
    inst = SimpleNamespace(role="institution", scope="HB-0005")
    sjz = {i.id for i in reg.institutions if i.region == "sjz"}
    assert access.institution_ids(mgr, reg) == sjz == auth.User("m", "region", "sjz").institution_ids(reg)
    assert access.visible_filter(admin, reg) is None and access.visible_filter(inst, reg) == {"HB-0005"}
    assert access.default_region(admin, reg) == "hebei" and access.default_region(mgr, reg) == "sjz"
    assert access.default_region(inst, reg) is None
    # ranking peers: the chosen region's subtree, else the manager's region, else the institution's own region
    assert access.peer_regions(admin, reg, None) is None
    assert access.peer_regions(admin, reg, "sjz") == reg.region_subtree("sjz")
    assert access.peer_regions(mgr, reg, None) == reg.region_subtree("sjz")
    own = reg.institution_by_id["HB-0005"].region
    assert access.peer_regions(inst, reg, None) == reg.region_subtree(own)
    with pytest.raises(Forbidden):
        access.peer_regions(mgr, reg, "bd")
    # overview: what is summed and whose targets apply
    assert access.overview_scope(mgr, reg, "sjz") == (sjz, "region:sjz")
    assert access.overview_scope(inst, reg, None) == ({"HB-0005"}, "institution:HB-0005")
    assert access.overview_scope(admin, reg, None) == (set(reg.institution_by_id), None)
    for user, region in ((inst, "hebei"), (None, None), (mgr, "hebei")):
        with pytest.raises(Forbidden):
            access.overview_scope(user, reg, region)
    # acknowledging: whoever sees the alert; no such alert is refused the same way
    alert = {"key": "k", "institution_id": "HB-0001"}
    assert access.require_acknowledge(mgr, reg, alert) is alert
    for user, a in ((inst, alert), (mgr, None), (None, alert)):
        with pytest.raises(Forbidden):
            access.require_acknowledge(user, reg, a)
    assert access.visible_alerts(mgr, reg, [alert, {"institution_id": "HB-0005"}]) == [alert]
    # M&V projects: every institution must be visible; none resolvable: administrators only
    assert access.project_visible(mgr, reg, {"HB-0001"}) and not access.project_visible(mgr, reg, {"HB-0001", "HB-0005"})
    assert access.project_visible(admin, reg, set()) and not access.project_visible(mgr, reg, set())
    assert access.report_registry(admin, reg) is reg
    assert {i.id for i in access.report_registry(mgr, reg).institutions} == sjz


def test_file_cache_recomputes_only_when_the_stamp_changes():
    from core.filecache import FileCache

    calls = []

    def load(value):
        def compute():
            calls.append(value)
            if isinstance(value, Exception):
                raise value
            return value
        return compute

    cache = FileCache()
    assert cache.get("f", 1, load("a")) == "a"
    assert cache.get("f", 1, load("b")) == "a" and calls == ["a"]  # same stamp: kept
    assert cache.get("f", 2, load("b")) == "b" and calls == ["a", "b"]
    assert cache.get("g", 2, load("c")) == "c"  # keys are independent
    bad = ConfigError([])
    assert cache.get("f", 3, load(bad), keep_last_on=ConfigError) == "b"  # invalid now: the last valid stays
    assert cache.get("f", 3, load("d")) == "b"  # ... for that stamp, without re-reading
    with pytest.raises(ConfigError):
        cache.get("new", 1, load(bad), keep_last_on=ConfigError)  # nothing valid yet: the error
    with pytest.raises(ValueError):
        cache.get("f", 4, load(ValueError("x")), keep_last_on=ConfigError)  # other errors propagate


def test_router_finds_each_page_and_its_subpaths():
    from dashboard.i18n import TEXT
    from dashboard.pages import PAGES
    from dashboard.shell import find_page

    by_path = {p.path: p for p in PAGES}
    assert len(by_path) == len(PAGES) and all(p.nav in TEXT for p in PAGES if p.nav)
    assert by_path["/wall"].nav is None and not by_path["/wall"].chrome  # full screen, not in the navigation
    assert find_page(PAGES, "/compare") == (by_path["/compare"], None)
    assert find_page(PAGES, None) == (by_path["/"], None)
    assert find_page(PAGES, "/ranking/") == (by_path["/ranking"], None)
    assert find_page(PAGES, "/institution/HB-0001") == (by_path["/institution"], "HB-0001")
    assert find_page(PAGES, "/institution/") == (by_path["/institution"], None)
    assert find_page(PAGES, "/ranking/x") == (None, None)  # no subpaths below the ranking
    assert find_page(PAGES, "/nowhere") == (None, None)
