"""Reminders of monthly submissions through the alert channels: institutions not yet submitted, overdue ones to their region.

On each of the registry's `submissions.reminder_days` (default the 10th and the 14th) every
institution whose last month is still missing or was returned gets one reminder
(`submission_reminder`, scope `institution:ID`); on the day after the deadline
(`submissions.deadline_day`, default the 15th) each region with overdue institutions gets
one notice listing them (`submission_overdue`, scope `region:ID`: its managers, and those
above, see it).

A reminder is a message, not an alert: it is delivered through the alert channels (the
outbox's delivery queue, `Outbox.enqueue`, retried like any notification) and never
opened as an alert, so nothing waits on the alert page to be acknowledged or resolved;
what is still to be done is the 填报进度 view (and the status in the API). Each
message's key holds the day (`.../submission/YYYY-MM@YYYY-MM-DD`) and the outbox queues a
key once, so a job run twice, or by two processes, sends exactly one message per
institution (or region) per day, each with the outbox's idempotency key.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from alerts.outbox import Outbox
from alerts.record import Alert
from core.registry import Registry
from models.submission import STATUS_ZH, deadline, reporting_month, statuses_for
from storage.submissions import SubmissionBook

RULES = ("submission_reminder", "submission_overdue")
DUE = ("missing", "returned")  # not (re)submitted yet
KIND = "reminder"  # the outbox's delivery kind of these messages


def reminder_alerts(registry: Registry, book: SubmissionBook, today: date) -> list[Alert]:
    """The reminders due on `today` (module docstring); none on other days."""
    month = reporting_month(today)
    settings = registry.submissions
    due_day = deadline(month, settings.deadline_day)
    reminding = today.day in settings.reminder_days and today <= due_day
    overdue = today == due_day + timedelta(days=1)
    if not (reminding or overdue):
        return []
    ids = [i.id for i in registry.institutions]
    status = statuses_for(ids, book.statuses(month))
    late = status[status.isin(DUE)]
    stamp = datetime.combine(today, datetime.min.time(), tzinfo=registry.tz).isoformat()
    period = f"{month}@{today.isoformat()}"
    out = []
    if reminding:
        for iid, st in late.items():
            name = registry.institution_by_id[iid].name
            out.append(Alert.new(
                "submission_reminder", "warning", f"institution:{iid}", "submission", month, key_period=period,
                message_zh=f"{name}：{month} 月能源资源消费数据{STATUS_ZH[st]}，请于 {due_day} 前完成填报",
                message_en=f"{name}: the figures of {month} are {st}; submit them by {due_day}",
                first_seen=stamp, institution_id=iid, extra={"deadline": due_day.isoformat(), "status": st}))
    if overdue:
        by_region: dict[str, list[str]] = {}
        for iid in late.index:
            by_region.setdefault(registry.institution_by_id[iid].region, []).append(iid)
        for region, members in sorted(by_region.items()):
            name = registry.region_by_id[region].name
            out.append(Alert.new(
                "submission_overdue", "warning", f"region:{region}", "submission", month, key_period=period,
                message_zh=f"{name}：{len(members)} 家单位 {month} 月数据逾期未报（截止 {due_day}）：{'、'.join(members)}",
                message_en=f"{name}: {len(members)} institutions have not submitted {month} (due {due_day}): "
                           f"{', '.join(members)}",
                first_seen=stamp, actual=float(len(members)), extra={"institutions": members,
                                                                    "deadline": due_day.isoformat()}))
    return out


def send_reminders(registry: Registry, book: SubmissionBook, outbox: Outbox, today: date) -> int:
    """Queue and deliver the reminders due on `today` as messages (module docstring);
    returns how many deliveries were queued now (none when they were queued before)."""
    alerts = reminder_alerts(registry, book, today)
    if not alerts:
        return 0
    messages = [{**a.to_dict(), "notification": "message", "revision": 0} for a in alerts]
    queued = outbox.enqueue(messages, KIND)
    outbox.deliver_pending()
    return queued
