"""Mapping profiles: a sender's format remembered, so its next file loads without a question.

A profile is found by the file's header signature (its set of normalized headers). A file
whose headers differ only by new columns, or by missing columns the profile maps to
optional fields, uses it too, and says what differed; one missing a column the profile
needs for a required field is asked about again."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from .columns import REQUIRED_GROUPS, normalize_header
from .models import MappingProfile, Upload
from .suggestions import FIELD_LABELS


class ProfileRejected(ValueError):
    """A profile name or change that cannot be saved; the message is for the user."""


@dataclass
class ProfileFit:
    profile: MappingProfile
    explicit: dict[str, str]  # {file header: field or ""}
    note: str  # what differed, for the card; "" for an exact match


def signature_of(headers: list[str]) -> tuple[str, list[str]]:
    normal = sorted({normalize_header(h) for h in headers if normalize_header(h)})
    return hashlib.sha256("\x1f".join(normal).encode()).hexdigest(), normal


def lacking(profile: MappingProfile, headers: list[str]) -> list[str]:
    """The profile's columns (normalized) that these headers lack and that it needs: those
    it maps to a required field no other mapped column (or value for every row) provides."""
    present = {normalize_header(h) for h in headers}
    have = {f for n, f in profile.mapping.items() if n in present and f}
    have |= {f for f, v in (profile.constants or {}).items() if str(v).strip()}
    missing: list[str] = []
    for group in REQUIRED_GROUPS:
        if not any(f in have for f in group):
            # a profile without a column for the group (never saved so) names the field
            missing += [n for n, f in profile.mapping.items() if f in group and n not in present] or [
                " or ".join(FIELD_LABELS[f] for f in group)
            ]
    return missing


def fit(profile: MappingProfile, headers: list[str]) -> ProfileFit | None:
    """The profile applied to these headers, or None when the file lacks a column the profile
    needs (one it maps to a required field that no other mapped column provides)."""
    if lacking(profile, headers):
        return None
    by_normal = {normalize_header(h): h for h in headers}
    explicit = {by_normal[n]: f for n, f in profile.mapping.items() if n in by_normal}
    absent = [n for n, f in profile.mapping.items() if n not in by_normal and f]
    new = [h for n, h in by_normal.items() if n not in profile.mapping]
    parts = []
    if new:
        parts.append("new column" + ("s " if len(new) > 1 else " ") + ", ".join(f"'{h}'" for h in new) + " not loaded")
    if absent:
        parts.append("column" + ("s " if len(absent) > 1 else " ") + ", ".join(f"'{n}'" for n in absent) + " missing")
    for header in new:
        explicit[header] = ""
    return ProfileFit(profile=profile, explicit=explicit, note="; ".join(parts))


def _near(headers: list[str]) -> list[tuple[int, MappingProfile]]:
    """Profiles sharing at least half of their columns with these headers, most shared first."""
    mine = {normalize_header(h) for h in headers}
    found = []
    for profile in MappingProfile.objects.all().only("id", "name", "headers", "mapping", "constants"):
        shared = len(mine & set(profile.headers))
        if shared and shared * 2 >= len(profile.headers):
            found.append((shared, profile))
    return sorted(found, key=lambda item: (-item[0], item[1].name))


def find_for(headers: list[str]) -> ProfileFit | None:
    """The profile for a file with these headers: its exact signature, else the profile
    sharing the most columns with it (at least half of the profile's) that still fits."""
    signature, _ = signature_of(headers)
    exact = MappingProfile.objects.filter(signature=signature).order_by("-last_used_at", "name").first()
    if exact:
        return fit(exact, headers)
    for _, profile in _near(headers):
        found = fit(profile, headers)
        if found:
            return found
    return None


def not_fitting_note(profile: MappingProfile, headers: list[str]) -> str:
    """Why a profile was not used for a file with these headers, for its card."""
    missing = lacking(profile, headers)
    return (
        f"Profile '{profile.name}' was not used: the file lacks "
        + ("columns " if len(missing) > 1 else "column ")
        + ", ".join(f"'{n}'" for n in missing)
        + " it needs"
    )


def closest_unfit_note(headers: list[str]) -> str:
    """For a file no profile serves: why the closest profile (sharing at least half of its
    columns) was not used, or ''."""
    near = _near(headers)
    return not_fitting_note(near[0][1], headers) if near else ""


def form_columns(*, profile: MappingProfile, user) -> tuple[list[str], dict, Upload | None]:
    """The columns the profile page's form lists, the plan its samples and preview come
    from, and the upload that plan is of: the last file that used the profile, among
    `user`'s own (uploads are owner-only), whose stored file is still there. Its headers
    come first, then the profile's columns that file lacked. Without such a file (deleted
    by housekeeping, or only others' files used it): the profile's own columns, no plan."""
    upload = profile.last_upload
    if upload is None or upload.owner_id != user.pk or not upload.file:
        upload = (
            Upload.objects.filter(profile=profile, owner_id=user.pk).exclude(file="").order_by("-created_at").first()
        )
    plan = (upload.mapping_plan or {}) if upload is not None else {}
    if not plan.get("headers"):
        upload, plan = None, {}
    headers = list(plan.get("headers", []))
    seen = {normalize_header(h) for h in headers}
    headers += [h for h in profile.mapping if h not in seen]
    return headers, plan, upload


def used(*, profile: MappingProfile, upload: Upload) -> None:
    MappingProfile.objects.filter(pk=profile.pk).update(last_used_at=timezone.now(), last_upload=upload)


def save_profile(*, name: str, upload: Upload, mapping: dict[str, str], by) -> MappingProfile:
    """Store `mapping` ({file header: field or ""}) and `upload`'s options under `name`
    (a profile of that name is replaced), keyed by the upload's header signature."""
    name = (name or "").strip()
    if not name:
        raise ProfileRejected("Give the profile a name.")
    if len(name) > 100:
        raise ProfileRejected("A profile name is at most 100 characters.")
    headers = (upload.mapping_plan or {}).get("headers") or list(mapping)
    signature, normal = signature_of(headers)
    values = dict(
        signature=signature,
        headers=normal,
        mapping={normalize_header(h): f for h, f in mapping.items()},
        day_first=upload.day_first,
        decimal_comma=upload.decimal_comma,
        currency=upload.currency,
        constants=upload.constants or {},
        last_used_at=timezone.now(),
        last_upload=upload,
    )
    profile, created = MappingProfile.objects.update_or_create(name=name, defaults=values)
    if created:
        MappingProfile.objects.filter(pk=profile.pk).update(created_by=by)
        profile.created_by = by
    return profile


def rename_profile(*, profile: MappingProfile, name: str) -> MappingProfile:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ProfileRejected("A profile name is 1 to 100 characters.")
    try:
        with transaction.atomic():
            MappingProfile.objects.filter(pk=profile.pk).update(name=name)
    except IntegrityError:
        raise ProfileRejected(f"There is already a profile named {name!r}.") from None
    profile.name = name
    return profile


def update_profile(
    *,
    profile: MappingProfile,
    mapping: dict[str, str],
    day_first: bool,
    decimal_comma: bool,
    currency: str,
    constants: dict,
) -> MappingProfile:
    """The profile page's edit: a new mapping ({header: field or ""}) and options for the
    same format (its signature stays: the files it serves are the same). Raises
    ProfileRejected, nothing saved, when the choice could not load a file: a required field
    without a column or a value, two columns on one field, a bad currency."""
    from .columns import validate_explicit_mapping
    from .services import MappingRejected, clean_options
    from .suggestions import suggest

    try:
        clean = validate_explicit_mapping(mapping)
        currency, fixed = clean_options(currency=currency, constants=constants)
    except (ValueError, MappingRejected) as exc:
        raise ProfileRejected(str(exc)) from exc
    checked = suggest(list(clean), None, explicit=clean, constants=fixed)
    if not checked.ready:
        raise ProfileRejected(checked.message().replace(" Choose the columns below.", ""))
    profile.mapping = {normalize_header(h): f for h, f in clean.items()}
    profile.day_first, profile.decimal_comma, profile.currency = day_first, decimal_comma, currency
    profile.constants = fixed
    profile.save(update_fields=["mapping", "day_first", "decimal_comma", "currency", "constants"])
    return profile


def delete_profile(*, profile: MappingProfile) -> None:
    profile.delete()
