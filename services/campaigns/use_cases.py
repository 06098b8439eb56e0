"""Use cases of the special rectification campaigns (专项整治): launch from a template, school
self-checks (自查), joint inspections (联合督查) and the scheduler's phase reminders.

Self-check problems and joint-inspection findings are reported as hazards
(``Rectification.report``) in the same commit as the self-check or inspection, with ids the
campaign domain derived, so a retry cannot report a hazard twice. No path but the lead
bureau's own assignment assigns them: an inspection's findings are hazards reported by the
inspecting units, their proposed responsible unit and deadline written into the hazard for
the lead to weigh when it assigns (assigning work is the lead's act, never a side effect).

Schools have no credentials of their own: they act (self-checks) through the unit that
registers them, the lead bureau (教育局), with a liaison or lead token.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError

from contracts.catalogue import Catalogue
from events.base import derive_id
from events.campaigns import Campaign, JointInspection, PhaseReminder, SelfCheck
from events.errors import Conflict, InvariantViolated
from events.rectifications import Actor, Rectification
from services.kernel.principal import Principal
from services.kernel.results import Written
from services.kernel.use_cases import UseCases


class CampaignUseCases(UseCases):
    def campaign(self, cid: uuid.UUID) -> Campaign:
        agg: Campaign = self.load(cid, Campaign, "campaign")
        return agg

    def launch_campaign(
        self, principal: Principal, *, year: int, template: str, school_ids: Sequence[str], now: datetime,
    ) -> Written:
        self.require_writer(principal)
        try:
            tpl = next(c for c in self.catalogue.campaigns.campaigns if c.code == template)
        except StopIteration:
            codes = ", ".join(c.code for c in self.catalogue.campaigns.campaigns)
            raise InvariantViolated(f"unknown campaign template {template!r}; known: {codes}") from None
        agg = Campaign.launch(lead=principal.agency, is_lead=self.is_lead(principal), year=year, template=tpl,
                              school_ids=school_ids, school_exists=self.school_exists, now=now)
        return self.create(agg.id, "campaign", agg)

    def submit_self_check(
        self, principal: Principal, campaign_id: uuid.UUID, *, school_id: str, occurred_on: date,
        results: Sequence[dict[str, Any]], now: datetime, evidence: Sequence[str] = (),
    ) -> Written:
        """Problems become hazards reported by the school's self-check (category of the campaign)."""
        self.require_writer(principal)
        campaign = self.campaign(campaign_id)
        check = SelfCheck.submit(campaign=campaign, by_agency=principal.agency,
                                 acts_for_schools=self.acts_for_schools(principal), school_id=school_id,
                                 occurred_on=occurred_on, results=results, logged_by=principal.actor, now=now,
                                 evidence=evidence)
        self.require_evidence(principal, check.evidence)
        actor = Actor(agency=principal.agency, lead=self.is_lead(principal), logged_by=principal.actor)
        aspects = {a: t for a, t in _aspect_texts(self.catalogue, campaign)}
        hazards = [
            self._hazard(actor, uuid.UUID(p["hazard_id"]), kind="self-check", units=[], school_id=school_id,
                         category=campaign.hazard_category, severity=p["severity"],
                         description=f"【{campaign.name}·自查】{aspects[aspect]}:{p['description']}",
                         found_on=occurred_on, now=now)
            for aspect, p in check.problems()
        ]
        return self.create(check.id, "self-check of this school for this campaign", check, *hazards,
                            related=[str(h.id) for h in hazards])

    def conduct_joint_inspection(
        self, principal: Principal, campaign_id: uuid.UUID, *, units: Sequence[str], school_ids: Sequence[str],
        occurred_on: date, summary: str, findings: Sequence[dict[str, Any]], idempotency_key: str | None,
        now: datetime, request_digest: str = "", evidence: Sequence[str] = (),
    ) -> Written:
        """Findings become hazards reported by the inspecting units (kind joint-inspection),
        awaiting the lead bureau's assignment. A retry with the same Idempotency-Key and body
        (``request_digest``) is answered with the first inspection."""
        self.require_writer(principal)
        inspection_id = (derive_id("joint-inspection", principal.agency, idempotency_key)
                         if idempotency_key else uuid.uuid4())
        prior = self.maybe(inspection_id) if idempotency_key else None
        if isinstance(prior, JointInspection):  # a retry: the first answer, whatever the day is now
            return self._inspection_replay(prior, request_digest)
        campaign = self.campaign(campaign_id)
        inspection = JointInspection.conduct(
            inspection_id=inspection_id, campaign=campaign, by_agency=principal.agency, units=units,
            school_ids=school_ids, occurred_on=occurred_on, summary=summary, findings=findings,
            known_units=self.unit_codes(), lead=self.lead_code, logged_by=principal.actor, now=now,
            request_digest=request_digest, evidence=evidence,
        )
        self.require_evidence(principal, inspection.evidence)
        actor = Actor(agency=principal.agency, lead=self.is_lead(principal), logged_by=principal.actor)
        aspects = {a: t for a, t in _aspect_texts(self.catalogue, campaign)}
        names = {u.code: u.name for u in self.catalogue.units.units}
        hazards = [
            self._hazard(
                actor, uuid.UUID(f["hazard_id"]), kind="joint-inspection", units=inspection.units,
                school_id=f["school_id"], category=campaign.hazard_category, severity=f["severity"],
                description=(f"【{campaign.name}·联合督查】{aspects[f['aspect']]}：{f['description']}"
                             f"（督查组建议责任单位：{names.get(f['responsible_unit'], f['responsible_unit'])}，"
                             f"建议整改时限：{f['deadline']}，待牵头单位交办）"),
                found_on=occurred_on, now=now)
            for f in inspection.findings
        ]
        related = [str(h.id) for h in hazards]
        try:
            return self.create(inspection.id, "joint inspection", inspection, *hazards, related=related)
        except Conflict:  # the same key racing with another request
            existing = self.maybe(inspection.id)
            if not isinstance(existing, JointInspection) or not idempotency_key:
                raise
            return self._inspection_replay(existing, request_digest)

    def _inspection_replay(self, existing: JointInspection, digest: str) -> Written:
        return self.replay(existing, digest, related=[f["hazard_id"] for f in existing.findings])

    def _hazard(self, actor: Actor, item_id: uuid.UUID, *, kind: str, units: Sequence[str], school_id: str,
                category: str, severity: str, description: str, found_on: date, now: datetime) -> Rectification:
        hz = self.catalogue.hazards
        return Rectification.report(
            item_id=item_id, actor=actor, kind=kind, units=units, school_id=school_id, category=category,
            severity=severity, description=description, found_on=found_on,
            categories=[c.code for c in hz.categories], severities=[s.code for s in hz.severities],
            known_unit=self.known_unit, school_exists=self.school_exists, request_digest="", now=now,
        )

    def issue_phase_reminder(
        self, *, campaign_id: uuid.UUID, template: str, phase: str, kind: str, deadline: str,
        school_ids: Sequence[str], now: datetime,
    ) -> bool:
        """The scheduler's phase reminder: once per (campaign, phase, kind). False when it
        was already issued (by this or another instance)."""
        agg = PhaseReminder.issue(campaign_id=campaign_id, template=template, phase=phase, kind=kind,
                                  deadline=deadline, school_ids=school_ids, lead=self.lead_code, now=now)
        try:
            self.commit(agg)
        except IntegrityError:
            return False
        return True


def _aspect_texts(catalogue: Catalogue, campaign: Campaign) -> list[tuple[str, str]]:
    tpl = next((c for c in catalogue.campaigns.campaigns if c.code == campaign.template), None)
    texts = {a.code: a.text for a in tpl.aspects} if tpl else {}
    return [(a, texts.get(a, a)) for a in campaign.aspects]
