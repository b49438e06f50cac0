"""Bookinfo ``ratings``: star ratings per reviewer as JSON at ``/ratings/<id>``."""

from __future__ import annotations

import re

from bookinfo._http import Handler, Identity, parse_args, serve
from bookinfo.catalogue import RATINGS


class RatingsHandler(Handler):
    def handle_get(self, path: str, query: dict[str, list[str]]) -> None:
        match = re.fullmatch(r"/ratings/(\d+)", path)
        if not match:
            super().handle_get(path, query)
            return
        self.send_json(200, {"id": int(match.group(1)), "ratings": dict(RATINGS)})


def main(argv: list[str] | None = None) -> None:
    args = parse_args("ratings", argv)
    serve(RatingsHandler, Identity("ratings", args.version), args)


if __name__ == "__main__":
    main()
