#!/usr/bin/env python3
"""Real clients of the ecosystem against `estudely serve`: FlexGet's Torznab search plugin
(the code FlexGet runs for a `discover: from: - torznab:` task) and feedparser on the RSS
feed. Prints one JSON object with what each client made of the answers, for
crates/estudely/tests/torznab_clients.rs to check.

Usage: torznab_client.py --url http://HOST:PORT --apikey KEY
Needs: pip install flexget feedparser requests (scripts/test installs them).
"""
import argparse
import json
import sys

import feedparser
import requests
from flexget.entry import Entry
from flexget.plugins.input.torznab import Torznab


class Task:
    """The part of a FlexGet task the plugin uses: its HTTP session."""

    def __init__(self):
        self.requests = requests.Session()


def flexget_search(url, apikey, searcher, entry):
    plugin = Torznab()
    config = {"url": url + "/torznab", "apikey": apikey, "searcher": searcher, "categories": []}
    found = plugin.search(Task(), Entry(**entry), config)
    return {
        "params": {k: v for k, v in plugin.params.items() if k != "apikey"},
        "results": [
            {
                "title": e.get("title"),
                "url": e.get("url"),
                "type": e.get("type"),
                "size": e.get("content_size"),
                "infohash": e.get("torrent_info_hash"),
                "season": e.get("series_season"),
                "episode": e.get("series_episode"),
                "seeds": e.get("torrent_seeds"),
                "leeches": e.get("torrent_leeches"),
            }
            for e in found
        ],
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--apikey", required=True)
    a = p.parse_args()
    out = {
        "tv": flexget_search(
            a.url, a.apikey, "tv",
            {"title": "Silent River S02E05", "series_name": "Silent River",
             "series_season": 2, "series_episode": 5},
        ),
        "movie": flexget_search(a.url, a.apikey, "movie", {"title": "Silent River"}),
        "search": flexget_search(a.url, a.apikey, "search", {"title": "silent river"}),
    }
    feed = feedparser.parse(
        requests.get(a.url + "/feed", params={"category": "tv", "apikey": a.apikey}, timeout=30).content
    )
    out["rss"] = {
        "bozo": bool(feed.bozo),
        "bozo_exception": str(feed.get("bozo_exception", "")),
        "title": feed.feed.get("title"),
        "entries": [
            {
                "title": e.get("title"),
                "link": e.get("link"),
                "published": e.get("published"),
                "enclosures": [{"type": x.get("type"), "href": x.get("href")} for x in e.get("enclosures", [])],
            }
            for e in feed.entries
        ],
    }
    wrong = requests.get(a.url + "/torznab/api", params={"t": "caps", "apikey": "wrong-wrong-wrong-1"}, timeout=30)
    out["wrong_key"] = {"status": wrong.status_code, "body": wrong.text}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
