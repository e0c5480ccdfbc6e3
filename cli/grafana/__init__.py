"""`lorakom grafana provision`: one Grafana organisation per municipality, and one for the region.

Each organisation holds one PostgreSQL data source that logs in as that town's own
database login (storage/reader_roles.py), so what a town's dashboards can show is
decided by PostgreSQL's row-level security, not by a dashboard variable anyone can
change. The region's organisation logs in as the region login, which sees what towns
shared with the region.
"""
