"""What the benchmark scripts share: one CSV writer."""
import csv
import os


def write_csv(out_dir, name, rows):
    """rows (dicts with the same keys) to out_dir/name; returns the path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path
