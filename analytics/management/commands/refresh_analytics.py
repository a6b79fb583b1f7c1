"""`manage.py refresh_analytics`: rebuild every analytics summary from the lines (a fresh
install, after a bulk change made outside Intake, or when a refresh could not be queued)."""

import time

from django.core.management.base import BaseCommand

from analytics import summaries


class Command(BaseCommand):
    help = "Rebuild the analytics summaries (spend by month, outliers, variance) from the lines."

    def handle(self, *args, **options) -> None:
        if not summaries.available():
            self.stdout.write("The analytics summaries need PostgreSQL; on SQLite the pages read the lines.")
            return
        started = time.perf_counter()
        summaries.refresh()
        summaries.forget_pending()
        self.stdout.write(f"Analytics summaries rebuilt in {time.perf_counter() - started:.1f} s.")
