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


def fit(profile: MappingProfile, headers: list[str]) -> ProfileFit | None:
    """The profile applied to these headers, or None when the file lacks a column the profile
    needs (one it maps to a required field that no other mapped column provides)."""
    by_normal = {normalize_header(h): h for h in headers}
    explicit = {by_normal[n]: f for n, f in profile.mapping.items() if n in by_normal}
    absent = [n for n, f in profile.mapping.items() if n not in by_normal and f]
    have = set(explicit.values()) | {f for f, v in (profile.constants or {}).items() if str(v).strip()}
    for group in REQUIRED_GROUPS:
        if not any(f in have for f in group):
            return None
    new = [h for n, h in by_normal.items() if n not in profile.mapping]
    parts = []
    if new:
        parts.append("new column" + ("s " if len(new) > 1 else " ") + ", ".join(f"'{h}'" for h in new) + " not loaded")
    if absent:
        parts.append("column" + ("s " if len(absent) > 1 else " ") + ", ".join(f"'{n}'" for n in absent) + " missing")
    for header in new:
        explicit[header] = ""
    return ProfileFit(profile=profile, explicit=explicit, note="; ".join(parts))


def find_for(headers: list[str]) -> ProfileFit | None:
    """The profile for a file with these headers: its exact signature, else the profile
    sharing the most columns with it (at least half of the profile's) that still fits."""
    signature, normal = signature_of(headers)
    exact = MappingProfile.objects.filter(signature=signature).order_by("-last_used_at", "name").first()
    if exact:
        return fit(exact, headers)
    mine = set(normal)
    best: tuple[int, ProfileFit] | None = None
    for profile in MappingProfile.objects.all().only("id", "name", "headers", "mapping", "constants"):
        shared = len(mine & set(profile.headers))
        if shared * 2 < len(profile.headers) or (best and shared <= best[0]):
            continue
        found = fit(profile, headers)
        if found:
            best = (shared, found)
    return best[1] if best else None


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
    """The profiles page's edit: a new mapping and options for the same format."""
    profile.mapping = {normalize_header(h): f for h, f in mapping.items()}
    profile.day_first, profile.decimal_comma, profile.currency = day_first, decimal_comma, currency
    profile.constants = constants
    profile.save(update_fields=["mapping", "day_first", "decimal_comma", "currency", "constants"])
    return profile


def delete_profile(*, profile: MappingProfile) -> None:
    profile.delete()
