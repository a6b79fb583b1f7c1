from django.urls import path

from . import history_views, review_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("uploads/", views.upload_create, name="upload-create"),
    path("uploads/cards/", views.upload_cards, name="upload-cards"),
    path("uploads/<uuid:upload_id>/", views.upload_detail, name="upload-detail"),
    path("uploads/<uuid:upload_id>/status.json", views.upload_status, name="upload-status"),
    path("uploads/<uuid:upload_id>/progress/", views.upload_progress, name="upload-progress"),
    path("uploads/<uuid:upload_id>/issues.csv", views.upload_issues_csv, name="upload-issues-csv"),
    path("uploads/<uuid:upload_id>/rejected.csv", views.upload_rejected_csv, name="upload-rejected-csv"),
    path("uploads/<uuid:upload_id>/mapping.json", views.upload_mapping_json, name="upload-mapping-json"),
    path("uploads/<uuid:upload_id>/mapping/", views.upload_mapping, name="upload-mapping"),
    path("uploads/<uuid:upload_id>/mapping/preview/", views.upload_mapping_preview, name="upload-mapping-preview"),
    path("uploads/<uuid:upload_id>/profile/", views.upload_save_profile, name="upload-save-profile"),
    path("profiles/", views.profile_list, name="profile-list"),
    path("profiles/<int:profile_id>/", views.profile_edit, name="profile-edit"),
    path("profiles/<int:profile_id>/preview/", views.profile_preview, name="profile-preview"),
    path("uploads/<uuid:upload_id>/cancel/", views.upload_cancel, name="upload-cancel"),
    path("uploads/<uuid:upload_id>/retry/", views.upload_retry, name="upload-retry"),
    path("uploads/<uuid:upload_id>/review/", review_views.upload_review, name="upload-review"),
    path("uploads/<uuid:upload_id>/changes.json", review_views.upload_changes_json, name="upload-changes-json"),
    path("uploads/<uuid:upload_id>/apply/", review_views.upload_apply, name="upload-apply"),
    path("uploads/<uuid:upload_id>/load/", review_views.upload_load, name="upload-load"),
    path("uploads/<uuid:upload_id>/revert/", review_views.upload_revert, name="upload-revert"),
    path("lines/<int:line_id>/", history_views.line_detail, name="line-detail"),
    path("lines/<int:line_id>/history.json", history_views.line_history_json, name="line-history-json"),
]
