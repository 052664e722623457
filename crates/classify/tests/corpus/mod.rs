//! A generated corpus of torrents with known categories: scene-style movie and TV names,
//! season packs, fansub episodes, music albums with covers and logs, audiobooks, ebooks,
//! comics and manga, ISOs, installers, games (scene groups, repacks, console dumps), adult
//! clips, datasets, and hostile names (markup, control and bidi characters, very long
//! names). Shared by the corpus test and the benchmark.

use estudely_classify::Category;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One torrent: its name, its files, and what it is.
pub struct Sample {
    pub name: String,
    pub files: Vec<(String, u64)>,
    pub truth: Category,
}

const WORDS: &[&str] = &[
    "Silent", "River", "Night", "Empire", "Last", "Summer", "Broken", "Glass", "Iron", "Garden",
    "Winter", "Echo", "Shadow", "Light", "Ocean", "Storm", "Paper", "Crown", "Wolf", "Harbor",
    "Velvet", "Signal", "Orbit", "Copper", "Lantern", "Atlas", "Hollow", "Crimson", "Meadow",
    "Falcon", "Cinder", "North", "Dust", "Marble", "Quiet", "Golden", "Frontier", "Tide",
];
/// Words of real titles that are also rule words: a film called "The Game", an album
/// called "Windows", a book called "Patch".
const TRICKY: &[&str] = &[
    "Game",
    "Switch",
    "Chapter",
    "Album",
    "Portable",
    "Patch",
    "Windows",
    "Comic",
    "Manga",
    "Season",
    "Episode",
    "Soundtrack",
    "Linux",
    "Setup",
    "Ebook",
    "2049",
    "1984",
];
const GROUPS: &[&str] = &[
    "SPARKS", "NTb", "FLUX", "GGEZ", "ETHEL", "RARBG", "YIFY", "TEPES", "CMRG", "KOGi",
];
const RES: &[&str] = &["720p", "1080p", "2160p", "480p"];
const SOURCES: &[&str] = &["BluRay", "WEB-DL", "WEBRip", "HDTV", "BDRip", "AMZN.WEB-DL"];
const CODECS: &[&str] = &["x264", "x265", "H.264", "HEVC", "AV1", "XviD"];
const HOSTILE: &[&str] = &[
    "<script>alert(1)</script>",
    "\u{202e}4pm.exe",
    "a\u{0}b",
    "'; DROP TABLE torrents; --",
    "😀🎬",
    "../../etc/passwd",
    "名前の映画",
    "%s%n%x",
];

fn pick<'a>(r: &mut SmallRng, xs: &[&'a str]) -> &'a str {
    xs[r.gen_range(0..xs.len())]
}

fn title(r: &mut SmallRng, sep: &str) -> String {
    let n = r.gen_range(1..=4);
    let mut t: Vec<String> = (0..n).map(|_| pick(r, WORDS).to_owned()).collect();
    if r.gen_ratio(1, 5) {
        t.insert(r.gen_range(0..=t.len()), pick(r, TRICKY).to_owned());
    }
    if r.gen_ratio(1, 12) {
        t.push(pick(r, HOSTILE).to_owned());
    }
    t.join(sep)
}

fn gib(r: &mut SmallRng, lo: u64, hi: u64) -> u64 {
    r.gen_range(lo..hi) << 20
}

fn movie(r: &mut SmallRng) -> Sample {
    let year = r.gen_range(1950..2026);
    let (name, main) = if r.gen_ratio(3, 4) {
        let n = format!(
            "{}.{year}.{}.{}.{}-{}",
            title(r, "."),
            pick(r, RES),
            pick(r, SOURCES),
            pick(r, CODECS),
            pick(r, GROUPS)
        );
        (
            n.clone(),
            format!("{n}.{}", if r.gen_bool(0.7) { "mkv" } else { "mp4" }),
        )
    } else {
        let n = format!("{} ({year})", title(r, " "));
        (n.clone(), format!("{n}.mp4"))
    };
    let mut files = vec![(main, gib(r, 700, 20_000))];
    if r.gen_bool(0.5) {
        files.push((format!("{name}.nfo"), 4_000));
    }
    if r.gen_bool(0.4) {
        files.push(("Subs/English.srt".into(), 90_000));
        files.push(("Subs/French.srt".into(), 90_000));
    }
    if r.gen_bool(0.3) {
        files.push(("Sample/sample.mkv".into(), 30 << 20));
    }
    Sample {
        name,
        files,
        truth: Category::Movie,
    }
}

fn tv(r: &mut SmallRng) -> Sample {
    let show = title(r, ".");
    let s = r.gen_range(1..15);
    let tech = format!(
        "{}.{}.{}-{}",
        pick(r, RES),
        pick(r, SOURCES),
        pick(r, CODECS),
        pick(r, GROUPS)
    );
    match r.gen_range(0..5) {
        0 | 1 => {
            let e = r.gen_range(1..24);
            let name = format!("{show}.S{s:02}E{e:02}.{tech}");
            let files = vec![(format!("{name}.mkv"), gib(r, 200, 3_000))];
            Sample {
                name,
                files,
                truth: Category::Tv,
            }
        }
        2 => {
            let name = format!("{show}.S{s:02}.{tech}");
            let files = (1..=r.gen_range(6..13))
                .map(|e| {
                    (
                        format!("{name}/{show}.S{s:02}E{e:02}.{tech}.mkv"),
                        gib(r, 200, 3_000),
                    )
                })
                .collect();
            Sample {
                name,
                files,
                truth: Category::Tv,
            }
        }
        3 => {
            let plain = show.replace('.', " ");
            let name = format!("{plain} - The Complete Series");
            let mut files = Vec::new();
            for season in 1..=r.gen_range(2..5) {
                for e in 1..=8 {
                    files.push((
                        format!("Season {season}/{plain} S{season:02}E{e:02}.mp4"),
                        gib(r, 100, 900),
                    ));
                }
            }
            Sample {
                name,
                files,
                truth: Category::Tv,
            }
        }
        _ => {
            let plain = show.replace('.', " ");
            let e = r.gen_range(1..100);
            let name = format!(
                "[{}] {plain} - {e:02} ({}) [ABCD1234].mkv",
                pick(r, &["SubsPlease", "Erai-raws", "HorribleSubs"]),
                pick(r, RES)
            );
            let files = vec![(name.clone(), gib(r, 200, 1_500))];
            Sample {
                name,
                files,
                truth: Category::Tv,
            }
        }
    }
}

fn music(r: &mut SmallRng) -> Sample {
    let artist = title(r, " ");
    let album = title(r, " ");
    let year = r.gen_range(1960..2026);
    let flac = r.gen_bool(0.5);
    let name = if flac {
        format!("{artist} - {album} ({year}) [FLAC]")
    } else {
        format!("{artist} - {album} {year} MP3 320kbps")
    };
    let ext = if flac { "flac" } else { "mp3" };
    let mut files: Vec<(String, u64)> = (1..=r.gen_range(6..16))
        .map(|t| {
            (
                format!("{name}/{t:02} - {}.{ext}", title(r, " ")),
                gib(r, 5, 60),
            )
        })
        .collect();
    files.push((format!("{name}/cover.jpg"), 800_000));
    if flac {
        files.push((format!("{name}/{album}.cue"), 2_000));
        files.push((format!("{name}/{album}.log"), 6_000));
    }
    Sample {
        name,
        files,
        truth: Category::Music,
    }
}

fn audiobook(r: &mut SmallRng) -> Sample {
    let author = title(r, " ");
    let book = title(r, " ");
    match r.gen_range(0..3) {
        0 => {
            let name = format!("{author} - {book} (Unabridged)");
            let files = (1..=r.gen_range(5..30))
                .map(|p| (format!("{book} {p:02}.mp3"), gib(r, 20, 80)))
                .collect();
            Sample {
                name,
                files,
                truth: Category::Audiobook,
            }
        }
        1 => {
            let name = format!("{author} - {book}");
            let files = vec![
                (format!("{book}.m4b"), gib(r, 200, 900)),
                ("cover.jpg".into(), 300_000),
            ];
            Sample {
                name,
                files,
                truth: Category::Audiobook,
            }
        }
        _ => {
            let name = format!("{book} - read by {author}");
            let files = (1..=r.gen_range(10..40))
                .map(|c| (format!("Chapter {c:02}.mp3"), gib(r, 10, 40)))
                .collect();
            Sample {
                name,
                files,
                truth: Category::Audiobook,
            }
        }
    }
}

fn ebook(r: &mut SmallRng) -> Sample {
    let author = title(r, " ");
    let book = title(r, " ");
    if r.gen_bool(0.7) {
        let ext = pick(r, &["epub", "mobi", "pdf", "azw3"]);
        let name = format!("{author} - {book} ({ext})");
        Sample {
            name,
            files: vec![(format!("{book}.{ext}"), r.gen_range(200_000..30_000_000))],
            truth: Category::Ebook,
        }
    } else {
        let name = format!("{author} - Collected Works");
        let files = (0..r.gen_range(3..20))
            .map(|_| {
                (
                    format!("{}.{}", title(r, " "), pick(r, &["epub", "mobi"])),
                    r.gen_range(200_000..5_000_000),
                )
            })
            .collect();
        Sample {
            name,
            files,
            truth: Category::Ebook,
        }
    }
}

fn comic(r: &mut SmallRng) -> Sample {
    let series = title(r, " ");
    if r.gen_bool(0.6) {
        let n = r.gen_range(1..300);
        let name = format!("{series} #{n:03} ({})", r.gen_range(1980..2026));
        Sample {
            name: name.clone(),
            files: vec![(format!("{name}.cbz"), gib(r, 20, 120))],
            truth: Category::Comic,
        }
    } else {
        let name = format!("{series} (Manga) Vol 01-10");
        let files = (1..=10)
            .map(|v| {
                (
                    format!("{series} v{v:02}.{}", pick(r, &["cbz", "cbr"])),
                    gib(r, 50, 200),
                )
            })
            .collect();
        Sample {
            name,
            files,
            truth: Category::Comic,
        }
    }
}

fn software(r: &mut SmallRng) -> Sample {
    let app = title(r, " ");
    match r.gen_range(0..4) {
        0 => {
            let name = format!(
                "{app} v{}.{}.{} x64",
                r.gen_range(1..30),
                r.gen_range(0..10),
                r.gen_range(0..100)
            );
            let files = vec![
                ("setup.exe".into(), gib(r, 20, 900)),
                ("readme.txt".into(), 3_000),
                ("Crack/patch.exe".into(), 400_000),
            ];
            Sample {
                name,
                files,
                truth: Category::Software,
            }
        }
        1 => {
            let distro = pick(r, &["ubuntu", "debian", "fedora", "archlinux", "linuxmint"]);
            let name = format!(
                "{distro}-{}.{:02}-desktop-amd64.iso",
                r.gen_range(10..30),
                r.gen_range(1..12)
            );
            Sample {
                name: name.clone(),
                files: vec![(name, gib(r, 1_000, 6_000))],
                truth: Category::Software,
            }
        }
        2 => {
            let name = format!("{app} for macOS");
            Sample {
                name,
                files: vec![(format!("{app}.dmg"), gib(r, 50, 3_000))],
                truth: Category::Software,
            }
        }
        _ => {
            let name = format!("{app} Portable Multilingual");
            Sample {
                name,
                files: vec![(format!("{app}.zip"), gib(r, 5, 500))],
                truth: Category::Software,
            }
        }
    }
}

fn game(r: &mut SmallRng) -> Sample {
    let g = title(r, ".");
    match r.gen_range(0..4) {
        0 => {
            let grp = pick(r, &["CODEX", "SKIDROW", "PLAZA", "RUNE", "TENOKE", "DOGE"]);
            let name = format!("{g}-{grp}");
            let files = vec![
                (
                    format!("{}-{}.iso", grp.to_lowercase(), g.to_lowercase()),
                    gib(r, 2_000, 60_000),
                ),
                (format!("{grp}.nfo"), 6_000),
            ];
            Sample {
                name,
                files,
                truth: Category::Game,
            }
        }
        1 => {
            let name = format!("{} [FitGirl Repack]", g.replace('.', " "));
            let mut files = vec![("setup.exe".into(), 5 << 20)];
            for i in 1..=r.gen_range(2..8) {
                files.push((format!("fg-{i:02}.bin"), gib(r, 1_000, 4_000)));
            }
            Sample {
                name,
                files,
                truth: Category::Game,
            }
        }
        2 => {
            let name = format!(
                "{} (NSW) [{}]",
                g.replace('.', " "),
                pick(r, &["EU", "US", "JP"])
            );
            Sample {
                name: name.clone(),
                files: vec![(format!("{name}.nsp"), gib(r, 500, 16_000))],
                truth: Category::Game,
            }
        }
        _ => {
            let name = format!("{}.v{}.{}-GOG", g, r.gen_range(1..5), r.gen_range(0..20));
            let files = vec![
                (
                    format!("setup_{}.exe", g.to_lowercase()),
                    gib(r, 100, 2_000),
                ),
                (
                    format!("setup_{}-1.bin", g.to_lowercase()),
                    gib(r, 1_000, 4_000),
                ),
            ];
            Sample {
                name,
                files,
                truth: Category::Game,
            }
        }
    }
}

fn xxx(r: &mut SmallRng) -> Sample {
    let site = pick(
        r,
        &["Brazzers", "RealityKings", "NaughtyAmerica", "BangBros"],
    );
    let name = format!(
        "{site}.{:02}.{:02}.{:02}.{}.XXX.{}.MP4-{}",
        r.gen_range(10..26),
        r.gen_range(1..13),
        r.gen_range(1..29),
        title(r, "."),
        pick(r, RES),
        pick(r, GROUPS)
    );
    Sample {
        name: name.clone(),
        files: vec![(format!("{name}.mp4"), gib(r, 300, 4_000))],
        truth: Category::Xxx,
    }
}

fn other(r: &mut SmallRng) -> Sample {
    match r.gen_range(0..3) {
        0 => {
            let name = format!(
                "dataset-{}-{}",
                title(r, "-").to_lowercase(),
                r.gen_range(2000..2026)
            );
            let files = (0..r.gen_range(1..10))
                .map(|i| {
                    (
                        format!("part-{i:04}.{}", pick(r, &["csv", "parquet", "jsonl"])),
                        gib(r, 10, 5_000),
                    )
                })
                .collect();
            Sample {
                name,
                files,
                truth: Category::Other,
            }
        }
        1 => {
            let name = format!("{} Photos", title(r, " "));
            let files = (0..r.gen_range(10..60))
                .map(|i| (format!("IMG_{i:04}.jpg"), r.gen_range(2_000_000..9_000_000)))
                .collect();
            Sample {
                name,
                files,
                truth: Category::Other,
            }
        }
        _ => {
            let name = format!("{} backup", title(r, " "));
            Sample {
                name: name.clone(),
                files: vec![(format!("{name}.7z"), gib(r, 10, 9_000))],
                truth: Category::Other,
            }
        }
    }
}

/// `per_type` torrents of every category, in a fixed order for a seed.
pub fn corpus(seed: u64, per_type: usize) -> Vec<Sample> {
    let mut r = SmallRng::seed_from_u64(seed);
    let makers: [fn(&mut SmallRng) -> Sample; 10] = [
        movie, tv, music, audiobook, ebook, comic, software, game, xxx, other,
    ];
    let mut out = Vec::with_capacity(per_type * makers.len());
    for _ in 0..per_type {
        for m in makers {
            out.push(m(&mut r));
        }
    }
    out
}
