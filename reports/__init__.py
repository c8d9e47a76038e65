"""Views over a saved audit result: console table, HTML report, CI gate. None recomputes."""
