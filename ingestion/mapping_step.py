"""The mapping step: before a file loads, decide which column feeds which field.

The worker reads the header and the first rows, applies a profile (the one named with the
upload, else the one whose signature the file has) or the mapping given with the upload,
and asks `suggestions` about the rest. When every required field is matched with
certainty and none has two candidates, the load goes on; otherwise the upload waits for
its owner (`NeedsMapping`) with what the mapping form needs stored on it."""

from __future__ import annotations

import pandas as pd

from . import profiles
from .models import Upload
from .outcomes import NeedsMapping
from .reading import Table
from .suggestions import FIELD_LABELS, PREVIEW_ROWS, SAMPLE_ROWS, MappingPlan, samples_of, suggest


def read_sample(table: Table) -> pd.DataFrame:
    """The first SAMPLE_ROWS rows, every column (before `use_columns` narrows the table)."""
    for batch in table.read(None):
        return batch.frame.head(SAMPLE_ROWS)
    return pd.DataFrame(columns=table.headers)


def constant_label(field: str) -> str:
    """The column a constant stands in, as row issues name it (in the buyer's words)."""
    return f"(every row) {FIELD_LABELS.get(field, field)}"


def with_constants(frame: pd.DataFrame, constants: dict[str, str], columns: dict[str, str]) -> pd.DataFrame:
    """The frame with a column per constant, named as `columns` names it."""
    extra = {constant_label(f): str(v) for f, v in constants.items() if columns.get(f) == constant_label(f)}
    return frame.assign(**extra) if extra else frame


def plan_upload(*, upload: Upload, table: Table) -> dict[str, str]:
    """The columns to load ({field: header}, constants included as their labels), or raise
    NeedsMapping. Stores the plan, the profile and its note on the upload."""
    sample = read_sample(table)
    headers = table.headers
    explicit = dict(upload.explicit_header_to_field or {})
    constants = dict(upload.constants or {})
    fit = None
    note = ""
    if not explicit:
        named = upload.profile if upload.profile_id else None
        if named is not None:  # named with the upload (manage.py ingest --profile)
            fit = profiles.fit(named, headers)
            if fit is None:
                note = profiles.not_fitting_note(named, headers)
                upload.profile = None
        else:
            fit = profiles.find_for(headers)
        if fit:
            profile = fit.profile
            explicit, note = fit.explicit, fit.note
            constants = dict(profile.constants or {})
            upload.day_first, upload.decimal_comma = profile.day_first, profile.decimal_comma
            upload.currency, upload.constants = profile.currency, constants
            upload.profile = profile
    plan = suggest(headers, sample, explicit=explicit, constants=constants)
    if fit and not plan.ready:  # the profile no longer fits: ask, starting from the suggestions
        note = f"Profile '{fit.profile.name}' did not fit this file: {plan.message()}"
        upload.profile = None
        plan = suggest(headers, sample, constants=constants)
    if not plan.ready and not note and not explicit:  # a profile it nearly matches: say why not
        note = profiles.closest_unfit_note(headers)
    if upload.profile is not None:
        _say_profile_columns(plan, upload.profile)
    upload.profile_note = note
    upload.mapping_plan = plan_json(plan, sample, profile=upload.profile.name if upload.profile else None)
    Upload.objects.filter(pk=upload.pk).update(
        mapping_plan=upload.mapping_plan,
        profile=upload.profile,
        profile_note=note,
        day_first=upload.day_first,
        decimal_comma=upload.decimal_comma,
        currency=upload.currency,
        constants=upload.constants,
    )
    if not plan.ready:
        raise NeedsMapping(plan.message())
    if upload.profile:
        profiles.used(profile=upload.profile, upload=upload)
    columns = dict(plan.field_to_header)
    for field in constants:
        if field not in columns and str(constants[field]).strip():
            columns[field] = constant_label(field)
    return columns


def _say_profile_columns(plan: MappingPlan, profile) -> None:
    """A column a profile leaves out is not 'ignored by choice' on this file: say whose."""
    from .columns import normalize_header

    for header, why in plan.unused.items():
        if why != "ignored by choice":
            continue
        if normalize_header(header) in profile.mapping:
            plan.unused[header] = f"ignored by profile '{profile.name}'"
        else:
            plan.unused[header] = f"a new column, not in profile '{profile.name}'"


def plan_json(plan: MappingPlan, sample: pd.DataFrame, *, profile: str | None) -> dict:
    """What the mapping form, mapping.json and the preview read, without the file."""
    head = sample.head(PREVIEW_ROWS)
    return {
        "headers": plan.headers,
        "samples": samples_of(plan.headers, sample),
        "suggestions": {h: s.as_dict() for h, s in plan.suggestions.items()},
        "chosen": plan.field_to_header,
        "missing": plan.missing,
        "ambiguous": plan.ambiguous,
        "unused": plan.unused,
        "problems": plan.problems,
        "profile": profile,
        "rows": [[int(row), [str(v) for v in values]] for row, values in zip(head.index, head.to_numpy().tolist())],
    }
