"""`genforge data list|info NAME|fetch NAME`: which data sets exist and where they are."""

from __future__ import annotations

from ..data import DATASETS, dataset_info, fetch


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="list, describe and fetch data sets",
                       description="List, describe and fetch the named data sets (any folder of images "
                                   "works too: --dataset folder:PATH).")
    p.add_argument("--data-dir", help="look here first for data files")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=type(p))
    verbs.add_parser("list", help="the named data sets and whether they were found")
    verbs.add_parser("info", help="where a data set is, its size, splits and classes").add_argument("name")
    verbs.add_parser("fetch", help="make sure a data set is on disk (downloads it if needed)").add_argument("name")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.verb == "list":
        for name in DATASETS:
            info = dataset_info(name, args.data_dir)
            c, h, w = info["shape"]
            where = info["found"] or "not found (genforge data fetch %s)" % name
            print(f"{name:15s} {h}x{w}x{c}  {len(info['classes'])} classes  {where}")
    elif args.verb == "info":
        info = dataset_info(args.name, args.data_dir)
        c, h, w = info["shape"]
        print(f"name:     {info['name']}")
        print(f"found in: {info['found'] or 'not found'}")
        print(f"images:   {h}x{w}, {c} channel(s)")
        for split, n in (info.get("splits") or {}).items():
            print(f"{split + ':':9s} " + (f"{n} images" if n is not None else "not found"))
        print(f"classes:  {', '.join(info['classes'])}")
        print(f"licence:  {info.get('licence', '')}")
        if info.get("citation"):
            print(f"cite:     {info['citation']}")
    else:
        for split, paths in fetch(args.name, args.data_dir).items():
            print(f"{split}: {', '.join(str(p) for p in paths)}")
    return 0
