from django.db import migrations, models


class Migration(migrations.Migration):
    """The two mappings of an upload are named for their direction: the one given is
    {file header: canonical field}, the one used is {canonical field: file header}."""

    dependencies = [
        ("ingestion", "0002_unlogged_staging"),
    ]

    operations = [
        migrations.RenameField(model_name="upload", old_name="column_mapping", new_name="explicit_header_to_field"),
        migrations.RenameField(model_name="upload", old_name="resolved_mapping", new_name="resolved_field_to_header"),
        migrations.AlterField(
            model_name="upload",
            name="explicit_header_to_field",
            field=models.JSONField(
                blank=True, default=dict, help_text="The mapping given with the upload: {file header: canonical field}."
            ),
        ),
        migrations.AlterField(
            model_name="upload",
            name="resolved_field_to_header",
            field=models.JSONField(
                blank=True, default=dict, help_text="The columns the load used: {canonical field: file header}."
            ),
        ),
    ]
