"""One router per context, named as in events/; services/web/site.py installs them in order."""
