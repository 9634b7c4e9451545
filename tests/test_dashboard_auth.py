"""Dashboard users: the users file, the `civicwatt users` verb, roles and scopes."""

from __future__ import annotations

import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicwatt.cli import main
from core.yamlfile import ConfigError
from dashboard import auth
from dashboard.access import Forbidden, alert_visible, require_institution, require_region, scoped_registry
from tests import support_dashboard_world as w


def test_users_verb_round_trip(tmp_path, capsys):
    f = tmp_path / "users.yaml"
    assert main(["users", "add", "alice", "--file", str(f), "--role", "region", "--scope", "sjz",
                 "--password", "alice-secret-1"]) == 0
    assert main(["users", "add", "bob", "--file", str(f), "--role", "institution", "--scope", "HB-0001",
                 "--generate"]) == 0
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
