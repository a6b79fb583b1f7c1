from django.contrib import admin

from .models import Material, PurchaseOrder, PurchaseOrderLine, RowIssue, Supplier, Upload


@admin.register(Supplier)
class SupplierAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "created_at"]
    search_fields = ["code", "name"]


@admin.register(Material)
class MaterialAdmin(admin.ModelAdmin):
    list_display = ["code", "description", "category", "unit_of_measure"]
    search_fields = ["code", "description"]
    list_filter = ["category"]


class PurchaseOrderLineInline(admin.TabularInline):
    model = PurchaseOrderLine
    extra = 0
    raw_id_fields = ["material", "upload"]


@admin.register(PurchaseOrder)
class PurchaseOrderAdmin(admin.ModelAdmin):
    list_display = ["po_number", "supplier", "order_date", "currency"]
    search_fields = ["po_number", "supplier__name"]
    raw_id_fields = ["supplier"]
    inlines = [PurchaseOrderLineInline]


@admin.register(PurchaseOrderLine)
class PurchaseOrderLineAdmin(admin.ModelAdmin):
    list_display = ["purchase_order", "line_number", "material", "quantity", "unit_price", "total_price", "currency"]
    raw_id_fields = ["purchase_order", "material", "upload"]
    search_fields = ["purchase_order__po_number"]


class RowIssueInline(admin.TabularInline):
    model = RowIssue
    extra = 0
    readonly_fields = ["row_number", "column", "value", "message", "severity"]


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["original_name", "owner", "status", "processed_rows", "total_rows", "created_at"]
    list_filter = ["status"]
    search_fields = ["original_name", "owner__username"]
    readonly_fields = ["id", "sha256", "task_id", "seq", "heartbeat_at", "started_at", "finished_at"]


@admin.register(RowIssue)
class RowIssueAdmin(admin.ModelAdmin):
    list_display = ["upload", "row_number", "column", "severity", "message"]
    list_filter = ["severity"]
    raw_id_fields = ["upload"]
