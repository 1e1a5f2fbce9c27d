"""The daily log review, controller side: a recorder hook over aitbc.ops.log_review results.

`review_hooks(recorder)` registers a finish hook. When the run holds log_review results it

- names the run's event "log review",
- adds one detail line per host and source ("t1 coordinator-api: 3 errors, 1 warning in 120 new lines"),
- proposes each error signature that neither failures/failure-archive.md nor
  failures/proposed-signatures.md mentions yet (by its id) as a new section of the latter, for a person
  or an agent to explain and move to the archive.

Log lines can hold secrets, so every text written passes through the recorder's redactor first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .memory import atomic_write, format_time, one_line
from .recorder import Recorder, RunRecord

ACTION = "aitbc.ops.log_review"
EVENT = "log review"
PLAYBOOK = "logs_review.yml"
ARCHIVE = "failures/failure-archive.md"
PROPOSALS = "failures/proposed-signatures.md"
PROPOSALS_HEADER = """# Proposed failure signatures

Error signatures the daily log review found that failure-archive.md does not know yet. Once understood,
move an entry to failure-archive.md with its Cause and Resolution.

"""
PROPOSAL_FOOTER = (
    "Proposed by the daily log review; move to failure-archive.md with Cause and Resolution once understood."
)
MAX_EXAMPLES = 3


@dataclass
class Proposal:
    sig_id: str
    service: str
    template: str
    count: int = 0
    seen_on: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)


def review_hooks(recorder: Recorder) -> None:
    """Register the log review's finish hook on a recorder."""
    recorder.finish_hooks.append(finish_hook)


def finish_hook(recorder: Recorder, record: RunRecord) -> None:
    results = [r for r in record.results_for(ACTION) if not r.failed]
    if not results and record.playbook != PLAYBOOK:
        return
    record.event = EVENT
    proposals: dict[str, Proposal] = {}
    for result in sorted(results, key=lambda r: r.host):
        for review in result.result.get("reviews") or []:
            if not isinstance(review, dict):
                continue
            record.details.append(summary_line(result.host, review))
            collect(proposals, result.host, review)
    if proposals and recorder.store is not None:
        write_proposals(recorder, record, list(proposals.values()))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def summary_line(host: str, review: dict[str, Any]) -> str:
    """'t1 coordinator-api: 3 errors, 1 warning in 120 new lines' (or why it was not reviewed)."""
    service = review.get("service") or review.get("path") or review.get("journal_unit") or "?"
    if review.get("error"):
        return f"{host} {service}: not reviewed ({review['error']})"
    line = (
        f"{host} {service}: {_plural(int(review.get('errors') or 0), 'error')}, "
        f"{_plural(int(review.get('warnings') or 0), 'warning')} in "
        f"{_plural(int(review.get('new_lines') or 0), 'new line')}"
    )
    notes = []
    if review.get("reset") in ("rotated", "truncated", "replaced"):
        notes.append(f"log {review['reset']}")
    if review.get("more"):
        notes.append("more left for the next review")
    return f"{line} ({'; '.join(notes)})" if notes else line


def collect(proposals: dict[str, Proposal], host: str, review: dict[str, Any]) -> None:
    """Merge one source's signatures into the run's proposals (one per signature id)."""
    service = str(review.get("service") or "?")
    for sig in review.get("signatures") or []:
        sig_id = str(sig.get("id") or "")
        if not sig_id:
            continue
        proposal = proposals.get(sig_id)
        if proposal is None:
            proposal = proposals[sig_id] = Proposal(sig_id, service, str(sig.get("template") or ""))
        proposal.count += int(sig.get("count") or 0)
        where = f"{host} ({service})"
        if where not in proposal.seen_on:
            proposal.seen_on.append(where)
        for example in sig.get("examples") or []:
            if len(proposal.examples) < MAX_EXAMPLES:
                proposal.examples.append(str(example))


def render_proposal(proposal: Proposal, first_seen: str) -> str:
    """One `## <service>: <template>` section."""
    # Backticks keep the <n>-style placeholders visible when the Markdown is rendered.
    template = one_line(proposal.template, 300).replace("`", "'")
    examples = "\n".join(proposal.examples)
    fence = "```"
    while fence in examples:
        fence += "`"
    lines = [
        f"## {proposal.service}: `{template}`",
        "",
        f"- **Signature id:** {proposal.sig_id}",
        f"- **First seen (UTC):** {first_seen}",
        f"- **Count:** {proposal.count}",
        f"- **Seen on:** {', '.join(proposal.seen_on)}",
        "- **Examples:**",
        "",
        f"{fence}text",
        examples,
        fence,
        "",
        PROPOSAL_FOOTER,
        "",
        "",
    ]
    return "\n".join(lines)


def write_proposals(recorder: Recorder, record: RunRecord, proposals: list[Proposal]) -> list[str]:
    """Append sections for signatures not in the archive or the proposals yet; returns their ids."""
    store = recorder.store
    assert store is not None
    store.ensure_layout()
    archive = store.path(ARCHIVE)
    known = archive.read_text() if archive.exists() else ""
    first_seen = format_time(record.finished or record.started)
    # Read and extend under the file's lock, so two concurrent reviews never propose one id twice.
    with store.locked(PROPOSALS) as target:
        current = target.read_text() if target.exists() else ""
        fresh = [p for p in proposals if p.sig_id not in known and p.sig_id not in current]
        if not fresh:
            return []
        text = "".join(recorder.redactor.redact_text(render_proposal(p, first_seen)) for p in fresh)
        atomic_write(target, (current or PROPOSALS_HEADER) + text)
    record.details.append(f"proposed {len(fresh)} new failure signature(s) in {PROPOSALS}")
    return [p.sig_id for p in fresh]
