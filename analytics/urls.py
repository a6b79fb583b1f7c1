from django.urls import path

from . import browse, views

urlpatterns = [
    path("browse/suppliers/", browse.supplier_list, name="browse-suppliers"),
    path("browse/suppliers/<int:supplier_id>/", browse.supplier_detail, name="browse-supplier"),
    path("browse/materials/", browse.material_list, name="browse-materials"),
    path("browse/materials/<int:material_id>/", browse.material_detail, name="browse-material"),
    path("browse/purchase-orders/", browse.purchase_order_list, name="browse-purchase-orders"),
    path("browse/purchase-orders/<int:purchase_order_id>/", browse.purchase_order_detail, name="browse-purchase-order"),
    path("browse/lines/", browse.line_list, name="browse-lines"),
    path("browse/lines.csv", browse.line_export_csv, name="browse-lines-csv"),
    path("browse/lines.xlsx", browse.line_export_xlsx, name="browse-lines-xlsx"),
    path("analytics/", views.overview, name="analytics-overview"),
    path("analytics/spend.json", views.spend_json, name="analytics-spend-json"),
    path("analytics/spend.csv", views.spend_csv, name="analytics-spend-csv"),
    path("analytics/materials/<int:material_id>/", views.material, name="analytics-material"),
    path("analytics/materials/<int:material_id>/prices.json", views.prices_json, name="analytics-prices-json"),
    path("analytics/materials/<int:material_id>/prices.csv", views.prices_csv, name="analytics-prices-csv"),
    path("analytics/materials/<int:material_id>/suppliers.json", views.suppliers_json, name="analytics-suppliers-json"),
    path("analytics/materials/<int:material_id>/suppliers.csv", views.suppliers_csv, name="analytics-suppliers-csv"),
    path("analytics/outliers/", views.outliers, name="analytics-outliers"),
    path("analytics/outliers.json", views.outliers_json, name="analytics-outliers-json"),
    path("analytics/outliers.csv", views.outliers_csv, name="analytics-outliers-csv"),
    path("analytics/variance/", views.variance, name="analytics-variance"),
    path("analytics/variance.json", views.variance_json, name="analytics-variance-json"),
    path("analytics/variance.csv", views.variance_csv, name="analytics-variance-csv"),
]
