import ctypes
import ctypes.util

from django.apps import AppConfig

# glibc's mallopt parameter: allocations from this size up are mapped on their own and
# returned to the system when freed.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 * 1024


class IngestionConfig(AppConfig):
    name = "ingestion"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """A load's memory goes back to the system between batches.

        - Arrow (pandas' strings, the readers) allocates through malloc, not its own
          jemalloc pool: the pool kept a load's freed batches mapped (a worker's peak RSS on
          a 300k file 20 MB higher), with no speed gained.
        - glibc raises its threshold for mapping a large block on its own each time such a
          block is freed, so a batch's columns soon come from the heap, which fragments and
          is seldom given back. A fixed threshold keeps every column-sized block mapped on
          its own (an erp 1M load's peak RSS 14 MB lower, in process).
        Both measured in process on the bench's erp files."""
        import pyarrow

        pyarrow.set_memory_pool(pyarrow.system_memory_pool())
        name = ctypes.util.find_library("c")
        try:
            ctypes.CDLL(name).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        except (OSError, AttributeError, TypeError):  # not glibc: its allocator has no such knob
            pass
