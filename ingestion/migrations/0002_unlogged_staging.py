"""The staging table is scratch space: on PostgreSQL it skips the write-ahead log. After a
server crash PostgreSQL empties it, and a run taken over after a crash starts from a clean
slate anyway, so nothing is lost that mattered."""

from django.db import migrations


def set_unlogged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE ingestion_stagedline SET UNLOGGED")


def set_logged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE ingestion_stagedline SET LOGGED")


class Migration(migrations.Migration):
    dependencies = [("ingestion", "0001_initial")]
    operations = [migrations.RunPython(set_unlogged, set_logged)]
