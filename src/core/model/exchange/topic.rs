//! Topic exchange: binding keys are patterns over `.`-separated words, where `*`
//! matches exactly one word and `#` matches zero or more words.
//!
//! Words are split exactly as RabbitMQ's `rabbit_db_topic_exchange:split_topic_key`
//! does: the empty key has zero words, and every `.` separates two words, which
//! may be empty (`"a..b"` is `a`, ``, `b`; `".a"` is ``, `a`; `"a."` is `a`, ``).
//! Only a whole word `*` or `#` is special; `a*` is a literal word. In a routing
//! key, `*` and `#` are literal words too (RabbitMQ's trie would match them
//! through its `*`/`#` edges as well, which yields the same destinations).
//!
//! The patterns form a trie whose edges are literal words plus one `*` and one
//! `#` edge per node, walked the way RabbitMQ's `trie_match` walks its ETS trie,
//! so a route visits only the branches the key can match, not every binding.

use std::hash::Hash;

use super::Dedup;

#[derive(Debug)]
pub(super) struct Topic<D> {
    root: Node<D>,
}

impl<D> Default for Topic<D> {
    fn default() -> Self {
        Topic { root: Node::default() }
    }
}

#[derive(Debug)]
struct Node<D> {
    literal: crate::core::Map<Box<str>, Node<D>>,
    star: Option<Box<Node<D>>>,
    hash: Option<Box<Node<D>>>,
    /// Destinations of the patterns that end here, one entry per binding (a queue
    /// bound with `a.#` and `a.#.#`, or with two argument tables, appears twice).
    dests: Vec<D>,
}

impl<D> Default for Node<D> {
    fn default() -> Self {
        Node {
            literal: Default::default(),
            star: None,
            hash: None,
            dests: Vec::new(),
        }
    }
}

impl<D> Node<D> {
    fn is_empty(&self) -> bool {
        self.dests.is_empty() && self.literal.is_empty() && self.star.is_none() && self.hash.is_none()
    }
}

/// The words of a key: none for the empty key, else every `.`-separated piece.
fn words(key: &str) -> impl Iterator<Item = &str> {
    (!key.is_empty()).then(|| key.split('.')).into_iter().flatten()
}

/// The words of a pattern as stored in the trie: a run of `#` collapsed into one,
/// since `#.#` matches exactly what `#` matches. Without this, each extra `#` in
/// a run multiplies the walk by the key's word count for nothing.
fn trie_words(pattern: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for w in words(pattern) {
        if !(w == "#" && out.last() == Some(&"#")) {
            out.push(w);
        }
    }
    out
}

/// The first word of a non-empty remainder and what follows it. `None` means no
/// words are left; `Some("")` is one empty word.
fn next_word(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('.') {
        Some((word, tail)) => (word, Some(tail)),
        None => (rest, None),
    }
}

impl<D: Clone + Eq + Hash + Ord> Topic<D> {
    pub(super) fn add(&mut self, dest: D, pattern: &str) {
        let mut node = &mut self.root;
        for w in trie_words(pattern) {
            node = match w {
                "*" => node.star.get_or_insert_with(Box::default),
                "#" => node.hash.get_or_insert_with(Box::default),
                _ => node.literal.entry(w.into()).or_default(),
            };
        }
        node.dests.push(dest);
    }

    /// Removes one binding of `dest` with `pattern`, then prunes the nodes that
    /// no longer lead anywhere, so churned bindings do not leak memory.
    pub(super) fn remove(&mut self, dest: &D, pattern: &str) {
        let removed = remove_in(&mut self.root, &trie_words(pattern), dest);
        assert!(removed, "bound topic pattern is in the trie");
    }

    pub(super) fn route(&self, routing_key: &str, out: &mut Vec<D>) {
        let rest = (!routing_key.is_empty()).then_some(routing_key);
        walk(&self.root, rest, &mut Dedup::new(out));
    }
}

fn remove_in<D: Eq>(node: &mut Node<D>, words: &[&str], dest: &D) -> bool {
    let Some((first, tail)) = words.split_first() else {
        let Some(at) = node.dests.iter().position(|d| d == dest) else {
            return false;
        };
        node.dests.swap_remove(at);
        return true;
    };
    match *first {
        "*" | "#" => {
            let slot = if *first == "*" { &mut node.star } else { &mut node.hash };
            let Some(child) = slot.as_deref_mut() else {
                return false;
            };
            let removed = remove_in(child, tail, dest);
            if child.is_empty() {
                *slot = None;
            }
            removed
        }
        word => {
            let Some(child) = node.literal.get_mut(word) else {
                return false;
            };
            let removed = remove_in(child, tail, dest);
            if child.is_empty() {
                node.literal.remove(word);
            }
            removed
        }
    }
}

/// Collects the destinations of every pattern under `node` that matches the
/// words in `rest` (see [`next_word`]).
fn walk<D: Ord + Clone>(node: &Node<D>, rest: Option<&str>, out: &mut Dedup<'_, D>) {
    let Some(remaining) = rest else {
        for d in &node.dests {
            out.push(d);
        }
        // A trailing `#` also matches zero words.
        if let Some(hash) = &node.hash {
            walk(hash, None, out);
        }
        return;
    };
    let (word, tail) = next_word(remaining);
    if let Some(child) = node.literal.get(word) {
        walk(child, tail, out);
    }
    if let Some(star) = &node.star {
        walk(star, tail, out);
    }
    if let Some(hash) = &node.hash {
        // `#` swallows zero words, then one, then two...: continue below it from
        // every suffix of the remaining words, the last being "no words left".
        let mut suffix = rest;
        loop {
            walk(hash, suffix, out);
            match suffix {
                Some(s) => suffix = next_word(s).1,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Bindings, ExchangeKind};
    use super::words;
    use ringmq_codec::FieldTable;

    fn routed(b: &Bindings<u32>, key: &str) -> Vec<u32> {
        let mut out = Vec::new();
        b.route(key, None, &mut out);
        out.sort();
        out
    }

    fn topic(patterns: &[&str]) -> Bindings<u32> {
        let mut b = Bindings::new(ExchangeKind::Topic);
        for (i, p) in patterns.iter().enumerate() {
            assert!(b.bind(i as u32, ringmq_codec::ShortStr::new(p).unwrap(), &FieldTable::new()));
        }
        b
    }

    /// The reference: a direct recursive reading of the rules, with no trie and no
    /// `#` collapsing, to check the trie against.
    fn naive_match(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => (0..=key.len()).any(|skip| naive_match(rest, &key[skip..])),
            Some((&"*", rest)) => !key.is_empty() && naive_match(rest, &key[1..]),
            Some((word, rest)) => key.first() == Some(word) && naive_match(rest, &key[1..]),
        }
    }

    /// Destination `i` is bound with `patterns[i]`, if it is still bound.
    fn naive_route(patterns: &[Option<String>], key: &str) -> Vec<u32> {
        let key: Vec<&str> = words(key).collect();
        (0..patterns.len() as u32)
            .filter(|&i| {
                let p = patterns[i as usize].as_deref();
                p.is_some_and(|p| naive_match(&words(p).collect::<Vec<_>>(), &key))
            })
            .collect()
    }

    #[test]
    fn tutorial_five_examples() {
        // rabbitmq.com/tutorials/tutorial-five: Q1 "*.orange.*", Q2 "*.*.rabbit" and "lazy.#".
        let mut b = Bindings::new(ExchangeKind::Topic);
        let none = FieldTable::new();
        b.bind(1, ringmq_codec::short!("*.orange.*"), &none);
        b.bind(2, ringmq_codec::short!("*.*.rabbit"), &none);
        b.bind(2, ringmq_codec::short!("lazy.#"), &none);
        assert_eq!(routed(&b, "quick.orange.rabbit"), vec![1, 2]);
        assert_eq!(routed(&b, "lazy.orange.elephant"), vec![1, 2]);
        assert_eq!(routed(&b, "quick.orange.fox"), vec![1]);
        assert_eq!(routed(&b, "lazy.brown.fox"), vec![2]);
        // Matches both of Q2's bindings, delivered once.
        assert_eq!(routed(&b, "lazy.pink.rabbit"), vec![2]);
        assert_eq!(routed(&b, "quick.brown.fox"), Vec::<u32>::new());
        assert_eq!(routed(&b, "orange"), Vec::<u32>::new());
        assert_eq!(routed(&b, "quick.orange.new.rabbit"), Vec::<u32>::new());
        assert_eq!(routed(&b, "lazy.orange.new.rabbit"), vec![2]);
        assert_eq!(routed(&b, "lazy"), vec![2]);
    }

    #[test]
    fn hash_in_every_position() {
        let b = topic(&["#", "a.#", "#.a", "a.#.b", "#.#", "*.#.*", "#.a.#"]);
        assert_eq!(routed(&b, ""), vec![0, 4]);
        assert_eq!(routed(&b, "a"), vec![0, 1, 2, 4, 6]);
        assert_eq!(routed(&b, "a.b"), vec![0, 1, 3, 4, 5, 6]);
        assert_eq!(routed(&b, "a.x.y.b"), vec![0, 1, 3, 4, 5, 6]);
        assert_eq!(routed(&b, "x.a"), vec![0, 2, 4, 5, 6]);
        assert_eq!(routed(&b, "x"), vec![0, 4]);
        assert_eq!(routed(&b, "x.y.z"), vec![0, 4, 5]);
    }

    #[test]
    fn empty_words_are_words() {
        let b = topic(&["", "*", "a..b", "a.*.b", ".a", "*.a", "a.", "#.", "*.*"]);
        // The empty key has zero words: only "" matches, not "*".
        assert_eq!(routed(&b, ""), vec![0]);
        assert_eq!(routed(&b, "a..b"), vec![2, 3]);
        assert_eq!(routed(&b, ".a"), vec![4, 5, 8]);
        assert_eq!(routed(&b, "a."), vec![6, 7, 8]);
        assert_eq!(routed(&b, "."), vec![7, 8]);
        assert_eq!(routed(&b, "x"), vec![1]);
    }

    #[test]
    fn star_and_hash_are_only_special_as_whole_words() {
        let b = topic(&["a*", "#a", "a.**"]);
        assert_eq!(routed(&b, "ab"), Vec::<u32>::new());
        assert_eq!(routed(&b, "a*"), vec![0]);
        assert_eq!(routed(&b, "#a"), vec![1]);
        assert_eq!(routed(&b, "a.**"), vec![2]);
        assert_eq!(routed(&b, "a.xy"), Vec::<u32>::new());
    }

    #[test]
    fn unbind_prunes_the_trie() {
        let mut b = topic(&["a.b.c", "a.#.c", "a.*"]);
        let none = FieldTable::new();
        assert!(b.unbind(&0, "a.b.c", &none));
        assert!(b.unbind(&1, "a.#.c", &none));
        assert_eq!(routed(&b, "a.b.c"), Vec::<u32>::new());
        assert_eq!(routed(&b, "a.b"), vec![2]);
        assert!(b.unbind(&2, "a.*", &none));
        let super::super::Matcher::Topic(t) = &b.matcher else {
            unreachable!()
        };
        assert!(t.root.is_empty());
    }

    #[test]
    fn collapsed_hash_runs_unbind_independently() {
        let mut b = topic(&["a.#", "a.#.#"]);
        b.bind(0, ringmq_codec::short!("a.#.#"), &FieldTable::new());
        assert!(b.unbind(&0, "a.#", &FieldTable::new()));
        assert_eq!(routed(&b, "a.x"), vec![0, 1]);
        assert_eq!(b.remove_destination(&0), 1);
        assert_eq!(routed(&b, "a.x"), vec![1]);
    }

    /// A small deterministic generator (splitmix64), so the randomized check needs
    /// no extra dependency and every failure prints the seed that reproduces it.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn key(&mut self, alphabet: &[&str], words_max: usize) -> String {
            let n = self.below(words_max + 1);
            let words: Vec<&str> = (0..n).map(|_| alphabet[self.below(alphabet.len())]).collect();
            words.join(".")
        }
    }

    const PATTERN_WORDS: &[&str] = &["a", "b", "", "*", "#", "#", "*"];
    const KEY_WORDS: &[&str] = &["a", "b", "", "c", "*", "#"];

    #[test]
    fn trie_agrees_with_naive_matcher_on_random_tables() {
        for seed in 0..300u64 {
            let mut rng = Rng(seed);
            let mut patterns: Vec<Option<String>> = (0..1 + rng.below(24))
                .map(|_| Some(rng.key(PATTERN_WORDS, 6)))
                .collect();
            let mut b = topic(&patterns.iter().flatten().map(String::as_str).collect::<Vec<_>>());
            for round in 0..2 {
                for _ in 0..60 {
                    let key = rng.key(KEY_WORDS, 7);
                    assert_eq!(
                        routed(&b, &key),
                        naive_route(&patterns, &key),
                        "seed {seed} round {round} key {key:?} patterns {patterns:?}"
                    );
                }
                // Unbind a random half, to check pruning keeps the rest intact.
                for (i, p) in patterns.iter_mut().enumerate() {
                    if rng.below(2) == 0 {
                        if let Some(pattern) = p.take() {
                            assert!(b.unbind(&(i as u32), &pattern, &FieldTable::new()));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn trie_agrees_with_naive_matcher_exhaustively_for_short_keys() {
        // Every pattern of up to 4 words over {a, "", *, #} against every key of up
        // to 4 words over {a, b, ""}: 341 patterns × 121 keys.
        fn all(alphabet: &[&str], max: usize) -> Vec<String> {
            let mut out = vec![String::new()];
            let mut layer: Vec<Vec<&str>> = vec![vec![]];
            for _ in 0..max {
                layer = layer
                    .iter()
                    .flat_map(|p| alphabet.iter().map(move |w| [p.as_slice(), &[*w]].concat()))
                    .collect();
                out.extend(layer.iter().map(|p| p.join(".")));
            }
            out
        }
        let patterns = all(&["a", "", "*", "#"], 4);
        let keys = all(&["a", "b", ""], 4);
        let b = topic(&patterns.iter().map(String::as_str).collect::<Vec<_>>());
        let patterns: Vec<Option<String>> = patterns.into_iter().map(Some).collect();
        for key in &keys {
            assert_eq!(routed(&b, key), naive_route(&patterns, key), "key {key:?}");
        }
    }
}
