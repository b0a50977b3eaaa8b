"""The phrasebook: what every Reply and refusal says, in the reader's language.

Handlers decide and return a code with data (``claimed`` ``{lead, due_at, tz}``); they never
write prose. Every channel's renderer (email answers, Slack, CLI, the API's ``message``)
asks this module for the words: ``say(code, data, locale)``. The phrase is chosen by
``data["phrase"]`` when a code has several (``invalid_input`` → ``bad_timezone``), else by
the code; its placeholders are filled from the data, formatted for the reader: dates in
their locale and the tenant's time zone (``tz`` in the data), amounts with their currency,
outcomes, states and commands in their words.

English is the source language (``msgid``); catalogs: ``templates/locale/<lang>/LC_MESSAGES/
messages.po``. Extract with ``pybabel extract -F babel-messages.cfg``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from babel.dates import format_date as _babel_date
from babel.dates import format_time as _babel_time
from babel.dates import get_datetime_format
from babel.lists import format_list

from lyra_bot import i18n
from lyra_bot.i18n import babel_locale, format_money, pick_locale


def N_(text: str) -> str:
    """Marks a message for extraction; translated where it is said."""
    return text


def ngettext(singular: str, plural: str) -> tuple[str, str]:
    """Marks a plural pair for extraction (``pybabel`` reads ``ngettext``'s two messages)."""
    return singular, plural


@dataclass(frozen=True, slots=True)
class Phrase:
    """One message: ``text`` (singular), ``plural`` counted by ``data[count]``, and
    ``zero`` said instead when that count is 0 ("No reminders are due.")."""

    text: str
    plural: str = ""
    count: str = "count"
    zero: str = ""


P = Phrase

# --- words shown inside phrases ------------------------------------------------------------

OUTCOMES: dict[str, str] = {
    "won": N_("won"),
    "lost": N_("lost"),
    "contacted": N_("contacted (not decided yet)"),
    "no_contact": N_("could not reach them"),
    "not_qualified": N_("not qualified"),
    "duplicate": N_("duplicate"),
}
"""Outcome codes as a reader says them (lower case, inside a sentence)."""

OUTCOME_LABELS: dict[str, str] = {
    "won": N_("Won"),
    "lost": N_("Lost"),
    "contacted": N_("Contacted (not decided yet)"),
    "no_contact": N_("Could not reach them"),
    "not_qualified": N_("Not qualified"),
    "duplicate": N_("Duplicate"),
}
"""Outcome codes as choices (a menu, a table heading)."""

STATES: dict[str, str] = {
    "held": N_("held"),
    "open": N_("open"),
    "claimed": N_("claimed"),
    "closed": N_("closed"),
    "withdrawn": N_("withdrawn"),
}

COMMANDS: dict[str, str] = {
    # Translators: reply keywords partners type (upper case); the parser reads these words.
    "claim": N_("CLAIM"),
    "won": N_("WON"),
    "lost": N_("LOST"),
    "contacted": N_("CONTACTED"),
    "no_contact": N_("NOCONTACT"),
    "not_qualified": N_("NOTQUALIFIED"),
    "duplicate": N_("DUPLICATE"),
    "release": N_("RELEASE"),
    "extend": N_("EXTEND"),
    "leads": N_("LEADS"),
    "mine": N_("MINE"),
    "help": N_("HELP"),
    "stop": N_("STOP"),
    "start": N_("START"),
    "approve": N_("APPROVE"),
    "decline": N_("DECLINE"),
}
"""The reply keywords in the reader's language (``%(cmd_claim)s`` in a phrase)."""

THE_OWNER = N_("the owner")  # who to ask, when the tenant's name is not known

ROLES: dict[str, str] = {
    "system": N_("system"),
    "owner": N_("owner"),
    "partner": N_("partner user"),
    "customer": N_("customer"),
}

# --- the phrases ---------------------------------------------------------------------------

PHRASES: dict[str, Phrase] = {
    # claims and the pool
    "claimed": P(N_("You have claimed %(ref)s. Please give feedback by %(due)s.")),
    "released": P(N_("%(ref)s is back in the pool. Thank you.")),
    "pool": P(*ngettext("%(num)d lead in your pool.", "%(num)d leads in your pool."), "total"),
    "pool_empty": P(
        N_(
            "There are no open leads for you right now. "
            "Your next digest will tell you about new ones."
        )
    ),
    "pool_more": P(*ngettext("%(num)d more in your pool.", "%(num)d more in your pool."), "more"),
    "similar": P(*ngettext("%(num)d similar lead.", "%(num)d similar leads."), "count"),
    "similar_intro": P(N_("Similar leads you can claim now:")),
    "mine": P(*ngettext("You hold %(num)d lead.", "You hold %(num)d leads."), "count"),
    "mine_none": P(N_("You hold no leads awaiting feedback.")),
    "lead_taken": P(N_("Sorry, %(ref)s has already been taken by another partner.")),
    "lead_gone": P(N_("%(ref)s is no longer available.")),
    "lead_just_taken": P(N_("Sorry, %(ref)s has just been taken by another partner.")),
    "already_yours": P(N_("You already hold %(ref)s.")),
    "partner_paused": P(
        N_(
            "Your partner may not claim leads until %(until)s: too many claims lapsed without "
            "feedback recently. You can still see the pool."
        )
    ),
    "not_entitled": P(N_("%(ref)s is not in your products or regions.")),
    "cooling_off": P(
        N_("You gave %(ref)s back or let it lapse; others get a turn until %(until)s.")
    ),
    "over_cap": P(
        *ngettext(
            "Your partner already holds %(num)d lead awaiting feedback (the limit is %(cap)d). "
            "Give feedback on it, then claim %(ref)s again.",
            "Your partner already holds %(num)d leads awaiting feedback (the limit is %(cap)d). "
            "Give feedback on one of them, then claim %(ref)s again.",
        ),
        "held",
    ),
    "rate_limited": P(
        *ngettext(
            "You are claiming too fast: at most %(limit)d claims a minute. "
            "Please try again in %(num)d second.",
            "You are claiming too fast: at most %(limit)d claims a minute. "
            "Please try again in %(num)d seconds.",
        ),
        "retry_after",
    ),
    "partner_rate_limited": P(
        *ngettext(
            "Your partner is claiming too fast: at most %(limit)d claims a minute for all its "
            "users together. Please try again in %(num)d second.",
            "Your partner is claiming too fast: at most %(limit)d claims a minute for all its "
            "users together. Please try again in %(num)d seconds.",
        ),
        "retry_after",
    ),
    "not_your_lead": P(N_("You do not hold %(ref)s.")),
    "no_longer_yours": P(N_("You no longer hold %(ref)s.")),
    "claim_just_ended": P(N_("Your claim on %(ref)s has just ended.")),
    "unknown_lead": P(N_("There is no lead %(ref)s. Please check the reference.")),
    "not_available": P(N_("%(ref)s is not available to you.")),
    # feedback
    "feedback": P(N_("Thank you: %(ref)s recorded as %(outcome)s.")),
    "feedback_updated": P(N_("Thank you: %(ref)s updated to %(outcome)s.")),
    "feedback_won": P(N_("Thank you: %(ref)s recorded as %(outcome)s (%(amount)s).")),
    "missing_amount": P(
        N_("Please add the amount won, e.g. %(cmd_won)s %(ref)s 12000 %(currency)s")
    ),
    "missing_reason": P(N_("Please add why it was lost, e.g. %(cmd_lost)s %(ref)s too expensive")),
    "currency_mismatch": P(N_("The amount says %(said)s, the currency %(currency)s.")),
    "already_contacted": P(N_("%(ref)s is already recorded as contacted.")),
    # extensions
    "extension_requested": P(
        *ngettext(
            "You asked %(tenant)s for %(num)d more day on %(ref)s; you will hear back. "
            "Until then the deadline stays %(due)s.",
            "You asked %(tenant)s for %(num)d more days on %(ref)s; you will hear back. "
            "Until then the deadline stays %(due)s.",
        ),
        "days",
    ),
    "extension_granted": P(N_("More time granted: %(ref)s is now due %(due)s.")),
    "extension_approved": P(N_("Approved: %(ref)s is now due %(due)s.")),
    "extension_declined": P(N_("Declined: %(ref)s stays due %(due)s; %(partner)s is told.")),
    "extension_days": P(N_("Ask for 1 to %(max)d days, e.g. %(cmd_extend)s %(ref)s 3")),
    "deadline_passed": P(N_("The deadline for %(ref)s has passed.")),
    "extension_waiting": P(N_("Your earlier request for %(ref)s is still waiting for %(tenant)s.")),
    "no_extension_waiting": P(N_("No extension request is waiting on %(ref)s.")),
    "extension_just_decided": P(N_("The request on %(ref)s was just decided.")),
    # digests
    "digests_off": P(N_("You will get no more digests. Send %(cmd_start)s to get them again.")),
    "digests_on": P(N_("You will get digests again.")),
    # contact checks and the customer
    "contact_confirmed": P(N_("Thank you: we noted that %(partner)s contacted you.")),
    "contact_denied": P(
        N_(
            "Thank you: we noted that %(partner)s has not contacted you yet, "
            "and we have told %(tenant)s."
        )
    ),
    "already_answered": P(N_("You have already answered this question. Thank you.")),
    "not_asked": P(N_("We did not ask you about this enquiry.")),
    "contact_check_question": P(N_("Please confirm your answer.")),
    "opted_out": P(N_("You will not be contacted about this enquiry.")),
    "already_opted_out": P(N_("We had already noted this.")),
    "link_invalid": P(N_("This link is no longer valid.")),
    # who may do what
    "forbidden": P(N_("Your account is not active. Please ask %(tenant)s.")),
    "role_required": P(N_("Only a %(roles)s may do this.")),
    "no_tenant": P(N_("No tenant given.")),
    "partner_user_needed": P(N_("A partner user is needed for this.")),
    "inactive": P(N_("This partner account is not active.")),
    # reply addresses
    "token_invalid": P(
        N_("The address you wrote to is not valid. Please reply to a recent Lyra mail.")
    ),
    "token_mangled": P(
        N_(
            "You replied to a Lyra mail, but the reply address arrived changed (your mail "
            "program or a forwarder altered it), so I cannot tell who you are. Please reply "
            "again to the original mail without editing the address."
        )
    ),
    "token_expired": P(
        N_(
            "You replied to a mail that is too old to answer. Please reply to a recent Lyra "
            "mail, such as your latest digest (send %(cmd_leads)s for a fresh one)."
        )
    ),
    "token_foreign": P(N_("This reply address is not one of ours.")),
    # answers of the Slack channel (codes of the Slack adapter)
    "slack_unknown": P(
        N_(
            "Lyra does not know you yet. Ask the channel manager who works with your company "
            "to register your email address (the one in your Slack profile) in Lyra."
        )
    ),
    "slack_ambiguous": P(
        N_(
            "You are registered with several owners in Lyra. Use this in a Slack channel that "
            "is linked to your partner, so Lyra knows which one you mean."
        )
    ),
    "slack_lookup_failed": P(
        N_("Lyra could not look you up in Slack just now. Please try again in a minute.")
    ),
    "slack_not_offered": P(N_("This lead is offered by an owner you do not work with in Lyra.")),
    "slack_foreign": P(N_("This Slack workspace is not connected to Lyra.")),
    "slack_partners_only": P(N_("Only partner users can do this.")),
    "slack_owners_only": P(N_("Only the owner's staff can see the report.")),
    "slack_owners_decide": P(N_("Only the owner's staff can decide on more time.")),
    "slack_unknown_verb": P(N_("I do not know '%(verb)s'.")),
    "slack_which_lead": P(N_("Say which lead, e.g. `/lyra %(verb)s L-1042`.")),
    "slack_feedback_form_failed": P(
        N_("Lyra could not open the feedback form. Try `/lyra feedback %(ref)s` again.")
    ),
    "slack_extension_form_failed": P(
        N_(
            "Lyra could not open the form. Reply %(cmd_extend)s %(ref)s and the number of "
            "days to any Lyra mail."
        )
    ),
    "choose_outcome": P(N_("Please choose an outcome.")),
    "form_out_of_date": P(N_("This form is out of date. Please open it again.")),
    "whole_days": P(N_("Say how many days, as a whole number like 3.")),
    # answers of the mail channel (codes of the email adapter)
    "missing_ref": P(N_("Which lead do you mean? Please add its reference: %(example)s")),
    "missing_days": P(N_("How many more days do you need? For example: %(example)s")),
    "bad_amount": P(
        N_('"%(amount)s" is not an amount I can read. Write it like 12000, 12\'000 or 12k.')
    ),
    "unknown_command": P(N_('I did not understand "%(line)s".')),
    "no_command": P(N_("I found no command in your mail.")),
    "quoted_only": P(
        N_(
            "I found commands only in the quoted part of your mail, so I did nothing. Write "
            "your commands above the quoted text."
        )
    ),
    "help": P(N_("Here is how to answer Lyra.")),
    "no_token": P(
        N_(
            "Your mail did not answer a mail from Lyra, so I cannot tell who sent it. Please "
            "reply to a Lyra mail (e.g. your digest) instead of writing a new one."
        )
    ),
    "wrong_sender": P(
        N_(
            "The mail you answered was sent to someone else, so I cannot act on your reply. "
            "Ask %(tenant)s to add you as a user, then reply to your own mails."
        )
    ),
    "owner_reply": P(
        N_(
            "In replies from the owner Lyra reads only %(cmd_approve)s and %(cmd_decline)s "
            "(with the lead's reference), to decide extension requests."
        )
    ),
    "customer_ack": P(N_("Thank you for your message. We have passed it on.")),
    "oversize": P(
        N_(
            "Your mail is too large for me (%(size_kb)s KB, at most %(limit_kb)s KB). Please "
            "send the commands again without attachments."
        )
    ),
    "you_wrote": P(N_("You wrote: %(line)s")),
    # input that cannot be read
    "bad_ref": P(N_("'%(value)s' is not a lead reference (like %(example)s).")),
    "not_an_amount": P(N_("'%(value)s' is not an amount.")),
    "negative_amount": P(N_("'%(value)s' is not a positive amount.")),
    "bad_outcome": P(N_("'%(value)s' is not an outcome. Use one of: %(choices)s.")),
    "bad_currency": P(N_("'%(value)s' is not a currency code (like CHF or EUR).")),
    "bad_yes_no": P(N_("'%(value)s' is neither yes nor no.")),
    "bad_time": P(N_("'%(value)s' is not a time of day like 08:00.")),
    "bad_hours": P(N_("'%(value)s' is not working hours like 08:00-17:00.")),
    "hours_backwards": P(N_("Working hours '%(value)s' end before they start.")),
    "bad_weekday": P(N_("'%(value)s' is not a weekday (mon … sun, or 1 … 7).")),
    "no_work_days": P(N_("At least one working day is needed (like mon-fri).")),
    "bad_country": P(N_("'%(value)s' is not a country with known holidays (like CH).")),
    "bad_subdivision": P(
        N_("'%(value)s' is not a subdivision of %(country)s; known: %(choices)s.")
    ),
    "bad_hours_list": P(N_("'%(value)s' is not a number of hours between 1 and 720.")),
    "bad_week": P(N_("'%(value)s' is not a week like 2026-W48 (or this, last).")),
    "no_such_week": P(N_("'%(value)s' is not a week of that year.")),
    "bad_date": P(N_("'%(value)s' is not a date like 2026-11-02.")),
    "range_backwards": P(N_("The range ends (%(end)s) before it starts (%(start)s).")),
    "range_too_long": P(N_("A report covers at most %(max)d days.")),
    "week_or_range": P(N_("Give either a week or a date range, not both.")),
    "range_start_missing": P(N_("Say where the range starts (--from 2026-11-01).")),
    "not_started": P(N_("%(period)s has not started yet.")),
    "bad_status": P(N_("'%(value)s' is not a status (%(choices)s).")),
    "bad_slug": P(N_("'%(value)s' is not a short name (letters, digits, - and _).")),
    "bad_email": P(N_("'%(value)s' is not an email address.")),
    "bad_locale": P(N_("'%(value)s' is not a supported language (%(choices)s).")),
    "out_of_range": P(N_("%(name)s must be between %(low)d and %(high)d.")),
    "bad_timezone": P(N_("'%(value)s' is not a time zone (like Europe/Zurich).")),
    "empty_name": P(N_("The name may not be empty.")),
    "auto_over_max": P(
        N_(
            "The automatic extension (%(auto)d days) may not exceed the longest extension "
            "(%(max)d days)."
        )
    ),
    "tenant_exists": P(N_("A tenant '%(slug)s' already exists.")),
    "nothing_to_change": P(N_("Nothing to change; give at least one option.")),
    "partner_needs_scope": P(N_("A partner needs at least one product and one region (or *).")),
    "partner_exists": P(N_("A partner '%(slug)s' already exists.")),
    "no_partner": P(N_("There is no partner '%(slug)s'. See 'lyra-bot partner list'.")),
    "user_exists": P(N_("A user %(email)s already exists.")),
    "no_user": P(N_("There is no user %(email)s to link.")),
    "bad_slack_channel": P(N_("'%(value)s' is not a Slack channel id (like C0123ABCD).")),
    "bad_slack_team": P(N_("'%(value)s' is not a Slack team id (like T0123ABCD).")),
    "bad_slack_user": P(N_("'%(value)s' is not a Slack user id (like U0123ABCD).")),
    "slack_channel_taken": P(N_("Slack channel %(channel)s is already linked elsewhere.")),
    "slack_channel_unknown": P(N_("Slack channel %(channel)s is not linked.")),
    "slack_user_taken": P(N_("Slack user %(slack_user)s is already linked to another user.")),
    "key_name_too_long": P(N_("The key's name is longer than 100 characters.")),
    "no_api_key": P(N_("%(tenant)s has no API key %(id)s.")),
    "key_already_revoked": P(N_("API key %(id)s is already revoked.")),
    "no_outbox_message": P(N_("There is no outbox message %(id)s.")),
    "not_dead": P(
        N_("Not a dead message: %(refs_list)s (see 'lyra-bot outbox list --status dead').")
    ),
    "no_such_user": P(N_("There is no user %(email)s. See 'lyra-bot user list'.")),
    "pool_sent": P(N_("Your leads are on their way.")),
    "api_key_needed": P(N_("A valid API key is needed.")),
    "no_tenant_found": P(N_("There is no such tenant.")),
    "bad_delivery_outcome": P(N_("'%(value)s' is not an outcome of a Slack delivery.")),
    "digest_room": P(N_("A digest needs room for at least one lead.")),
    "not_withdrawable": P(N_("%(ref)s is %(status)s; it cannot be withdrawn.")),
    "not_held": P(N_("%(ref)s is %(status)s, not held.")),
    "held_no_consent": P(
        N_(
            "%(ref)s: %(hold)s. "
            "Record the customer's consent with 'lyra-bot lead consent %(ref)s …'."
        )
    ),
    "which_legal_basis": P(N_("Say which legal basis: consent or legitimate_interest.")),
    "unknown_job": P(N_("There is no job '%(value)s'. Jobs: %(choices)s.")),
    # lead intake (owner)
    "lead_added": P(N_("Added %(ref)s to the pool.")),
    "lead_held": P(N_("Added %(ref)s but kept it out of the pool: %(hold)s. %(hint)s")),
    "hint_consent": P(N_("Record the customer's consent with 'lyra-bot lead consent %(ref)s …'.")),
    "hint_approve": P(
        N_("Approve it with 'lyra-bot lead approve %(ref)s' if it is a new customer.")
    ),
    "migrations_pending": P(
        *ngettext(
            "The database needs %(num)d migration; run 'lyra-bot db upgrade'.",
            "The database needs %(num)d migrations; run 'lyra-bot db upgrade'.",
        ),
        "count",
    ),
    "outbox_delivered": P(
        *ngettext("Delivered %(num)d message.", "Delivered %(num)d messages."),
        "count",
        zero=N_("No message was waiting."),
    ),
    "mail_polled": P(
        *ngettext(
            "Processed %(num)d mail, %(failed)s refused or failed, %(deferred)s left for the "
            "next poll.",
            "Processed %(num)d mails, %(failed)s refused or failed, %(deferred)s left for the "
            "next poll.",
        ),
        "count",
    ),
    "imported": P(*ngettext("Imported %(num)d lead.", "Imported %(num)d leads."), "count"),
    "imported_held": P(
        *ngettext(
            "Imported %(num)d leads; kept out of the pool as possible duplicates: %(held_list)s",
            "Imported %(num)d leads; kept out of the pool as possible duplicates: %(held_list)s",
        ),
        "count",
    ),
    "lead_invalid": P(N_("%(problems_text)s")),
    "import_failed": P(N_("Nothing was imported. Please fix:\n%(problems_text)s")),
    "import_empty": P(N_("The file is empty; it needs a header line with product and region.")),
    "import_no_rows": P(N_("The file has a header but no leads.")),
    "refs_taken": P(N_("Nothing was imported: references already used: %(refs_list)s")),
    "import_preview": P(
        *ngettext(
            "Dry run: would import %(num)d lead, %(pool)d into the pool; nothing was changed.",
            "Dry run: would import %(num)d leads, %(pool)d into the pool; nothing was changed.",
        )
    ),
    "import_preview_held": P(
        *ngettext(
            "Dry run: would import %(num)d lead, %(pool)d into the pool, %(held_count)d held:"
            "\n%(held_text)s\nNothing was changed.",
            "Dry run: would import %(num)d leads, %(pool)d into the pool, %(held_count)d held:"
            "\n%(held_text)s\nNothing was changed.",
        )
    ),
    "lead_approved": P(N_("%(ref)s is now in the pool.")),
    "legal_basis": P(N_("%(ref)s: legal basis recorded (%(basis)s).")),
    "legal_basis_held": P(
        N_("%(ref)s: legal basis recorded (%(basis)s). It stays held: consent is required.")
    ),
    "legal_basis_opened": P(
        N_("%(ref)s: legal basis recorded (%(basis)s). It is now in the pool.")
    ),
    "lead": P(N_("%(ref)s: %(status)s")),
    "lead_teaser": P(N_("%(ref)s is in your pool.")),
    "leads": P(*ngettext("%(count)d of %(num)d lead.", "%(count)d of %(num)d leads."), "total"),
    "lead_withdrawn": P(N_("%(ref)s is withdrawn.")),
    # problems inside a lead or a CSV file (``problems`` items)
    "line": P(N_("line %(line)d: %(text)s")),
    "too_long": P(N_("%(field)s is longer than %(max)d characters")),
    "unknown_fields": P(N_("unknown fields: %(fields_list)s")),
    "missing_field": P(N_("%(field)s is missing")),
    "bad_region": P(
        N_(
            "region '%(value)s' is not a region code like CH or CH-ZH "
            "(an ISO 3166 country or subdivision)"
        )
    ),
    "text_too_long": P(N_("%(field)s is longer than %(max)d characters.")),
    "bad_url": P(N_("'%(value)s' is not a web address (https://…).")),
    "not_a_choice": P(N_("'%(value)s' is not one of %(choices)s.")),
    "bad_lead_locale": P(N_("locale '%(value)s' is not a supported language (%(choices)s)")),
    "bad_lead_email": P(N_("email '%(value)s' is not an email address")),
    "missing_columns": P(N_("missing columns: %(fields_list)s")),
    "unknown_columns": P(
        N_(
            "unknown columns: %(fields_list)s (known: %(choices)s, or their names in German, "
            "French or Italian)"
        )
    ),
    "columns_clash": P(N_("columns '%(first)s' and '%(second)s' both mean %(field)s")),
    "unknown_encoding": P(N_("Cannot tell the file's character encoding; save it as CSV UTF-8.")),
    "not_xlsx": P(N_("This is not an .xlsx workbook Lyra can read (%(detail)s).")),
    "extra_values": P(N_("more values than columns")),
    "ref_repeated": P(N_("%(ref)s already on line %(first)d")),
    "no_way_to_reach": P(N_("neither email nor phone to reach the customer")),
    "too_many_rows": P(N_("the file has %(count)d leads; import at most %(max)d at once")),
    "and_more": P(N_("… and %(count)d more")),
    "bad_legal_basis": P(N_("legal_basis '%(value)s' is not consent or legitimate_interest")),
    "consent_needs": P(N_("consent needs %(fields_list)s")),
    "interest_needs": P(N_("legitimate_interest needs legal_note (which interest)")),
    "bad_consent_at": P(N_("consent_at '%(value)s' is not a date or date and time")),
    # administration (owner, operator)
    "tenant_added": P(N_("Tenant '%(slug)s' added.")),
    "tenant_updated": P(N_("Tenant '%(slug)s': %(changes_text)s.")),
    "nothing_changed": P(N_("nothing changed")),
    "tenant": P(N_("Tenant '%(slug)s'.")),
    "tenants": P(*ngettext("%(num)d tenant.", "%(num)d tenants."), "count"),
    "partner_added": P(N_("Partner '%(slug)s' added.")),
    "partners": P(*ngettext("%(num)d partner.", "%(num)d partners."), "count"),
    "user_added": P(N_("User %(email)s added for partner '%(partner)s'.")),
    "owner_user_added": P(N_("User %(email)s added for the owner.")),
    "slack_channel_linked": P(
        N_(
            "Slack channel %(channel)s now gets the digests of partner '%(partner)s'. "
            "Invite the Lyra app to the channel so it can post there."
        )
    ),
    "slack_channel_unlinked": P(N_("Slack channel %(channel)s gets no more digests.")),
    "slack_user_linked": P(N_("%(email)s is now Slack user %(slack_user)s.")),
    "api_key_created": P(
        N_("API key %(id)s for %(tenant)s (keep it now, it is not shown again):\n%(key)s")
    ),
    "api_key_revoked": P(N_("API key %(id)s is revoked.")),
    "api_keys": P(
        *ngettext("%(num)d API key of %(tenant)s.", "%(num)d API keys of %(tenant)s."), "count"
    ),
    "disclosed": P(N_("Recorded.")),
    "disclosures": P(*ngettext("%(num)d disclosure.", "%(num)d disclosures."), "count"),
    "export": P(
        *ngettext(
            "%(num)d lead holds data about %(email)s.", "%(num)d leads hold data about %(email)s."
        ),
        "count",
    ),
    "erased": P(
        *ngettext("Erased %(email)s from %(num)d lead.", "Erased %(email)s from %(num)d leads."),
        "count",
    ),
    "report": P(
        N_(
            "%(tenant)s, %(period_label)s: claims %(claims)s, won %(won)s, "
            "lapses %(lapses)s, open %(open)s."
        )
    ),
    "outbox": P(
        *ngettext("%(count)d of %(num)d message.", "%(count)d of %(num)d messages."), "total"
    ),
    "outbox_message": P(N_("Message %(id)s: %(state)s")),
    "outbox_retried": P(
        *ngettext("%(num)d dead message queued again.", "%(num)d dead messages queued again.")
    ),
    "partner": P(N_("%(name)s (%(slug)s)")),
    "users": P(*ngettext("%(num)d user.", "%(num)d users.")),
    "user": P(N_("%(email)s (%(who)s)")),
    "sent_text": P(*ngettext("%(num)d line.", "%(num)d lines.")),
    "jobs": P(*ngettext("%(num)d job.", "%(num)d jobs."), "count"),
    # sweeps (the scheduler's log and ``jobs list``)
    "expired": P(
        *ngettext("%(num)d claim lapsed%(refs_tail)s.", "%(num)d claims lapsed%(refs_tail)s."),
        zero=N_("No claims are overdue."),
    ),
    "reminded": P(
        *ngettext("%(num)d reminder sent%(refs_tail)s.", "%(num)d reminders sent%(refs_tail)s."),
        zero=N_("No reminders are due."),
    ),
    "checked": P(
        *ngettext(
            "Asked %(num)d customer whether they were contacted.",
            "Asked %(num)d customers whether they were contacted.",
        ),
        zero=N_("No contact checks are due."),
    ),
    "purged": P(
        *ngettext(
            "Erased the customer data of %(num)d lead.",
            "Erased the customer data of %(num)d leads.",
        ),
        "erased",
    ),
    "pruned": P(*ngettext("Forgot %(num)d inbound key.", "Forgot %(num)d inbound keys.")),
    "stale_reported": P(N_("Stale leads reported: %(count)d, to owners: %(owners)d.")),
    "digests": P(
        N_("Digests queued: %(queued)d; users with nothing new or none wanted: %(skipped)d.")
    ),
    "digests_scheduled": P(
        N_("Digests of tenants: %(tenants)d; mails: %(mails)d; Slack channels: %(channels)d.")
    ),
    "slack_digests": P(
        N_("Slack messages queued: %(messages)d (leads: %(leads)d, channels: %(channels)d).")
    ),
    "reports_sent": P(N_("Weekly reports sent (%(count)d)%(sent_tail)s.")),
    "mail_recorded": P(N_("Mail recorded (%(verdict)s).")),
    "busy": P(N_("%(job)s is running in another instance.")),
    "duplicate": P(N_("Already handled.")),
    "idempotency_key_reused": P(
        N_(
            "This idempotency key was already used for a different request; nothing was "
            "done. Use a new key for a new request."
        )
    ),
    # generic fallbacks (a code without its own phrase)
    "error": P(N_("Something went wrong.")),
    "not_found": P(N_("Not found.")),
    "invalid_input": P(N_("The input is not valid.")),
    "invalid_transition": P(N_("That is not possible in the lead's current state.")),
    "ok": P(N_("Done.")),
}


# --- formatting of data --------------------------------------------------------------------


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def moment(value: Any, locale: str | None, tz: str | None = None) -> str:
    """A date and time as the reader writes it (``7 Dec 2026, 16:00``), in the tenant's zone;
    no seconds, no ISO."""
    when = _when(value)
    if when is None:
        return str(value or "")
    loc = babel_locale(locale)
    zone = i18n._zone(tz) if tz else None
    if zone is not None:
        when = when.astimezone(zone)
    date = _babel_date(when, format="medium", locale=loc)
    time = _babel_time(when, format="short", locale=loc)
    return get_datetime_format("medium", locale=loc).replace("{1}", date).replace("{0}", time)


def day(value: Any, locale: str | None, tz: str | None = None) -> str:
    """A date alone (``7 Dec 2026``)."""
    when = _when(value)
    if when is None:
        return str(value or "")
    return i18n.format_date(when, locale, tz)


def word(table: Mapping[str, str], key: Any, locale: str | None) -> str:
    """A code (outcome, state, command) in the reader's words; unknown codes as they are."""
    text = table.get(str(key))
    return i18n.gettext(locale, text) if text else str(key)


def outcome(code: Any, locale: str | None) -> str:
    return word(OUTCOMES, code, locale)


def outcome_label(code: Any, locale: str | None) -> str:
    return word(OUTCOME_LABELS, code, locale)


def state(code: Any, locale: str | None) -> str:
    return word(STATES, code, locale)


def command(name: str, locale: str | None) -> str:
    return word(COMMANDS, name, locale)


def items(values: list[Any], locale: str | None) -> str:
    """``a, b and c`` (``a, b et c`` …)."""
    shown = [str(v) for v in values if v not in (None, "")]
    if not shown:
        return ""
    return format_list(shown, locale=babel_locale(locale))


def _ref(data: Mapping[str, Any]) -> str:
    if data.get("ref"):
        return str(data["ref"])
    lead = data.get("lead")
    if isinstance(lead, Mapping) and lead.get("ref"):
        return str(lead["ref"])
    return ""


class _Values(dict):
    """Placeholder values; a missing one shows empty rather than failing the whole answer."""

    def __missing__(self, key: str) -> str:
        return ""


def values(data: Mapping[str, Any], locale: str | None, tz: str | None = None) -> dict[str, Any]:
    """The data a phrase may show, formatted for the reader."""
    lang = pick_locale(locale)
    zone = tz or data.get("tz")
    out = _Values({k: v for k, v in data.items() if isinstance(v, str | int | float | Decimal)})
    for key in ("tenant", "partner"):
        if isinstance(data.get(key), Mapping):
            out[key] = data[key].get("name", "")
    out["ref"] = _ref(data)
    for key in ("due_at", "until", "answered_at"):
        if data.get(key):
            out[key.removesuffix("_at")] = moment(data[key], lang, zone)
    if data.get("outcome"):
        out["outcome"] = outcome(data["outcome"], lang)
    if data.get("status"):
        out["status"] = state(data["status"], lang)
    if data.get("amount") not in (None, ""):
        currency = str(data.get("currency") or "")
        out["amount"] = (
            format_money(data["amount"], currency, lang) if currency else str(data["amount"])
        )
    if not out.get("tenant"):
        out["tenant"] = i18n.gettext(lang, THE_OWNER)
    for name in COMMANDS:
        out[f"cmd_{name}"] = command(name, lang)
    for key in ("fields", "refs", "held", "choices", "roles"):
        if isinstance(data.get(key), list):
            out[f"{key}_list"] = items(data[key], lang)
    if isinstance(data.get("choices"), list):
        out["choices"] = ", ".join(map(str, data["choices"]))
    if isinstance(data.get("roles"), list):
        out["roles"] = " / ".join(word(ROLES, r, lang) for r in data["roles"])
    if isinstance(data.get("refs"), list):
        refs = data["refs"][:20]
        out["refs_tail"] = (
            (": " + ", ".join(refs) + (" …" if len(data["refs"]) > 20 else "")) if refs else ""
        )
    if isinstance(data.get("sent"), list):
        out["sent_tail"] = (": " + ", ".join(data["sent"])) if data["sent"] else ""
    if isinstance(data.get("held"), list) and data["held"] and isinstance(data["held"][0], Mapping):
        out["held_text"] = "\n".join(
            "  " + say("line", {"line": h["line"], "text": h.get("reason", "")}, lang)
            for h in data["held"][:50]
        )
    if isinstance(data.get("problems"), list):
        out["problems_text"] = _problems(data["problems"], lang, zone)
    if isinstance(data.get("changes"), Mapping):
        changes = data["changes"]
        out["changes_text"] = (
            ", ".join(f"{k}={v}" for k, v in changes.items())
            if changes
            else i18n.gettext(lang, PHRASES["nothing_changed"].text)
        )
    if data.get("hint"):
        rest = {k: v for k, v in data.items() if k not in ("hint", "phrase")}
        out["hint"] = say(str(data["hint"]), rest, lang, zone)
    return out


def _problems(problems: list[Any], locale: str, tz: str | None) -> str:
    lines = []
    for problem in problems[:50]:
        if isinstance(problem, Mapping):
            text = say(str(problem.get("phrase") or "invalid_input"), problem, locale, tz)
            if problem.get("line"):
                text = say("line", {"line": problem["line"], "text": text}, locale)
        else:
            text = str(problem)
        lines.append(text)
    if len(problems) > 50:
        lines.append(say("and_more", {"count": len(problems) - 50}, locale))
    separator = "\n" if any(isinstance(p, Mapping) and p.get("line") for p in problems) else "; "
    return separator.join(lines)


_LENIENT = re.compile(r"%\((\w+)\)d")


def phrase_key(code: str, data: Mapping[str, Any] | None = None) -> str:
    """Which phrase says this code with this data."""
    chosen = (data or {}).get("phrase")
    if isinstance(chosen, str) and chosen in PHRASES:
        return chosen
    return code if code in PHRASES else "ok"


def say(
    code: str, data: Mapping[str, Any] | None, locale: str | None, tz: str | None = None
) -> str:
    """The sentence for ``code`` with ``data``, in ``locale`` (English when unknown)."""
    data = data or {}
    phrase = PHRASES[phrase_key(code, data)]
    filled = values(data, locale, tz)
    if phrase.plural:
        n = data.get(phrase.count)
        if isinstance(n, list):
            n = len(n)
        try:
            count = int(n or 0)
        except (TypeError, ValueError):
            count = 0
        filled["num"] = count
        if count == 0 and phrase.zero:
            text = i18n.translations(locale).ugettext(phrase.zero)
        else:
            text = i18n.translations(locale).ungettext(phrase.text, phrase.plural, count)
    else:
        text = i18n.translations(locale).ugettext(phrase.text)
    try:
        return text % filled
    except (TypeError, ValueError, KeyError):
        # A translation or a value of the wrong type must not cost the reader the answer.
        return _LENIENT.sub(r"%(\1)s", text) % filled


def reply_text(reply: Any, locale: str | None, tz: str | None = None) -> str:
    """What a Reply says (``reply.code`` + ``reply.data``)."""
    return say(reply.code, reply.data, locale, tz)


def tr(text: str, locale: str | None, **values: Any) -> str:
    """A renderer's own word (a button, a label, a header) in ``locale``.

    Message first, so renderers import it as ``_`` and ``pybabel extract`` finds the words
    with its default keywords: ``_("Claim", locale)``.
    """
    return i18n.gettext(locale, text, **values)


def ntr(singular: str, plural: str, n: int, locale: str | None, **values: Any) -> str:
    """``tr`` with a plural form (import it as ``ngettext``); ``%(num)d`` is ``n``."""
    return i18n.ngettext(locale, singular, plural, n, **values)
