from django.urls import path

from errors import views

urlpatterns = [
    path("", views.index),
    path("boom/", views.boom),
    path("missing/", views.missing),
]
