#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # No secret key means a development checkout (production always sets one): debug on,
    # so every command the README shows works as written. An explicit DJANGO_DEBUG wins,
    # so `DJANGO_DEBUG=0 manage.py check --deploy` still demands the key.
    if not os.environ.get("DJANGO_SECRET_KEY"):
        os.environ.setdefault("DJANGO_DEBUG", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
