"""The admin: a window on the data, not a second way to write it. Uploads, purchase orders,
their lines and row issues are written by the services and the pipeline (statuses, owners,
stored files, counters, line identity), so here they are read-only; suppliers and materials
may be corrected by hand. Nothing is inlined without a bound: a purchase order with
thousands of lines links to its lines' paginated list instead."""

from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from .models import Material, PurchaseOrder, PurchaseOrderLine, RowIssue, Supplier, Upload


class ReadOnlyAdmin(admin.ModelAdmin):
    """View only: rows come from the services; deleting or editing them here would skip the
    rules they keep (ownership, a status that a running task owns, the stored file)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Supplier)
class SupplierAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "created_at"]
    search_fields = ["code", "name"]
    readonly_fields = ["key", "created_at"]


@admin.register(Material)
class MaterialAdmin(admin.ModelAdmin):
    list_display = ["code", "description", "category", "unit_of_measure"]
    search_fields = ["code", "description"]
    list_filter = ["category"]
    readonly_fields = ["key", "created_at"]


@admin.register(PurchaseOrder)
class PurchaseOrderAdmin(ReadOnlyAdmin):
    list_display = ["po_number", "supplier", "order_date", "currency"]
    list_select_related = ["supplier"]
    search_fields = ["po_number", "supplier__name"]
    fields = ["po_number", "supplier", "order_date", "currency", "created_at", "lines_link"]
    readonly_fields = ["po_number", "supplier", "order_date", "currency", "created_at", "lines_link"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("supplier").annotate(line_count=Count("lines"))

    @admin.display(description="Lines")
    def lines_link(self, obj) -> str:
        url = reverse("admin:ingestion_purchaseorderline_changelist") + f"?purchase_order__id__exact={obj.pk}"
        return format_html('<a href="{}">{} lines</a>', url, f"{obj.line_count:,}")


@admin.register(PurchaseOrderLine)
class PurchaseOrderLineAdmin(ReadOnlyAdmin):
    list_display = ["purchase_order", "line_number", "material", "quantity", "unit_price", "total_price", "currency"]
    list_select_related = ["purchase_order", "material"]
    search_fields = ["purchase_order__po_number"]
    raw_id_fields = ["purchase_order", "material", "upload"]
    # A count over millions of lines on every page costs more than the page.
    show_full_result_count = False


@admin.register(Upload)
class UploadAdmin(ReadOnlyAdmin):
    list_display = ["original_name", "owner", "status", "processed_rows", "total_rows", "created_at"]
    list_select_related = ["owner"]
    list_filter = ["status"]
    search_fields = ["original_name", "owner__username"]
    exclude = ["column_mapping", "resolved_mapping"]
    readonly_fields = [
        field.name for field in Upload._meta.fields if field.name not in ("column_mapping", "resolved_mapping")
    ] + ["issues_link"]

    @admin.display(description="Row issues")
    def issues_link(self, obj) -> str:
        url = reverse("admin:ingestion_rowissue_changelist") + f"?upload__id__exact={obj.pk}"
        return format_html('<a href="{}">row issues</a>', url)


@admin.register(RowIssue)
class RowIssueAdmin(ReadOnlyAdmin):
    list_display = ["upload", "row_number", "column", "severity", "message"]
    list_select_related = ["upload"]
    list_filter = ["severity"]
    raw_id_fields = ["upload"]
    show_full_result_count = False
