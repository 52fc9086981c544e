//! List parameters of RabbitMQ's API (`page`, `page_size`, `name`, `use_regex`,
//! `sort`, `sort_reverse`, `columns`) and the paged reply shape.
//!
//! Lists stay fast with 100,000 objects: items are borrowed views, filtering
//! and sorting use cheap keys ([`Item::sort_key`]), and only the items of the
//! requested page are rendered to JSON. Sorting by a column without a cheap key
//! renders every item once (still O(n log n)).

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::error::ApiError;
use super::Query;

/// RabbitMQ's default and largest page size.
pub const PAGE_SIZE_DEFAULT: usize = 100;
pub const PAGE_SIZE_MAX: usize = 500;

/// A value to sort by.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum SortKey<'a> {
    Num(f64),
    Str(&'a str),
}

/// Something a list shows.
pub trait Item {
    /// What `name=` filters on.
    fn name(&self) -> &str;
    /// The vhost, for the default (vhost, name) order; "" when not per vhost.
    fn vhost(&self) -> &str {
        ""
    }
    /// A cheap key for `sort=column`, or None to sort by the rendered JSON.
    fn sort_key(&self, _column: &str) -> Option<SortKey<'_>> {
        None
    }
    fn render(&self) -> Value;
}

/// A list entry already rendered to JSON, with the name and vhost lists
/// filter and sort on (bindings, consumers: small objects built per request).
pub struct JsonItem {
    pub v: Value,
    pub name: String,
    pub vhost: String,
}

impl Item for JsonItem {
    fn name(&self) -> &str {
        &self.name
    }
    fn vhost(&self) -> &str {
        &self.vhost
    }
    fn render(&self) -> Value {
        self.v.clone()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub page: Option<usize>,
    pub page_size: usize,
    pub name: Option<String>,
    pub use_regex: bool,
    pub sort: Option<String>,
    pub sort_reverse: bool,
    pub columns: Option<Vec<String>>,
}

impl ListParams {
    pub fn parse(q: &Query) -> Result<ListParams, ApiError> {
        let num = |k: &str| -> Result<Option<usize>, ApiError> {
            match q.get(k) {
                None => Ok(None),
                Some(v) => v.parse::<usize>().map(Some).map_err(|_| {
                    ApiError::new(
                        400,
                        "invalid_pagination_parameters",
                        format!("Invalid pagination parameters: {k} {v}"),
                    )
                }),
            }
        };
        let page = num("page")?;
        let page_size = num("page_size")?;
        if page == Some(0) || page_size == Some(0) || page_size.is_some_and(|s| s > PAGE_SIZE_MAX) {
            return Err(ApiError::new(
                400,
                "invalid_pagination_parameters",
                format!(
                    "Invalid pagination parameters: page number {}, page size {}",
                    page.map_or("undefined".into(), |p| p.to_string()),
                    page_size.map_or("undefined".into(), |p| p.to_string())
                ),
            ));
        }
        let truthy = |k: &str| q.get(k).is_some_and(|v| v == "true");
        Ok(ListParams {
            page,
            page_size: page_size.unwrap_or(PAGE_SIZE_DEFAULT),
            name: q.get("name").filter(|s| !s.is_empty()).map(str::to_owned),
            use_regex: truthy("use_regex"),
            sort: q.get("sort").filter(|s| !s.is_empty()).map(str::to_owned),
            sort_reverse: truthy("sort_reverse"),
            columns: q
                .get("columns")
                .filter(|s| !s.is_empty())
                .map(|c| c.split(',').map(|s| s.trim().to_owned()).collect()),
        })
    }
}

/// [`list`] as a reply. Without `page`, the array is written item by item, so
/// an unpaged list of 100,000 queues never holds 100,000 JSON trees at once.
pub fn reply<I: Item>(items: Vec<I>, p: &ListParams) -> Result<super::Reply, ApiError> {
    if p.page.is_some() {
        return Ok(super::Reply::Json(200, list(items, p)?));
    }
    let items = sort(filter(items, p)?, p);
    Ok(raw_array(items.iter().map(|i| select(i.render(), &p.columns))))
}

/// A JSON array of `values`, written as they come (a list of 100,000 queues
/// is never one `Value`).
fn raw_array(values: impl Iterator<Item = Value>) -> super::Reply {
    let mut out = Vec::with_capacity(2 + values.size_hint().0 * 64);
    out.push(b'[');
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, &v).expect("JSON to memory");
    }
    out.push(b']');
    super::Reply::Raw {
        status: 200,
        content_type: "application/json",
        body: out.into(),
    }
}

/// Filters, sorts and pages `items`; renders only what is returned.
pub fn list<I: Item>(items: Vec<I>, p: &ListParams) -> Result<Value, ApiError> {
    let total = items.len();
    let items = sort(filter(items, p)?, p);
    let filtered = items.len();
    let rendered = items.iter().map(|i| select(i.render(), &p.columns));
    if p.page.is_none() {
        return Ok(Value::Array(rendered.collect()));
    }
    page_of(rendered, total, filtered, p)
}

/// The page `p` asks for (`p.page` is set) of `values`, sorted, `filtered`
/// of `total` before the filter: RabbitMQ's paged object; only the page's
/// values are rendered.
fn page_of(
    values: impl Iterator<Item = Value>,
    total: usize,
    filtered: usize,
    p: &ListParams,
) -> Result<Value, ApiError> {
    let page = p.page.expect("a page asked for");
    let page_count = filtered.div_ceil(p.page_size);
    if page > page_count.max(1) {
        return Err(ApiError::new(
            400,
            "page_out_of_range",
            format!(
                "Page out of range, page: {page} page size: {} len: {filtered}",
                p.page_size
            ),
        ));
    }
    let page_items: Vec<Value> = values.skip((page - 1) * p.page_size).take(p.page_size).collect();
    Ok(serde_json::json!({
        "filtered_count": filtered,
        "item_count": page_items.len(),
        "items": page_items,
        "page": page,
        "page_count": page_count,
        "page_size": p.page_size,
        "total_count": total,
    }))
}

/// One shard's part of a list (`http::gather`): its items filtered and
/// sorted, as many as the page asked for needs (all without a page),
/// rendered whole; and how many it had before and after the filter.
#[derive(Debug, Default)]
pub struct Part {
    pub rows: Vec<Row>,
    pub total: usize,
    pub filtered: usize,
    /// This shard has the object the list is of (a connection, for its
    /// channels): set by the caller.
    pub found: bool,
    /// What this shard knows of other shards' rows, for the merge to put in
    /// them (a stream's reader offsets, kept by the stream's owner): not
    /// items of the list.
    pub aside: Vec<Value>,
}

/// An item of a [`Part`]: rendered, with its name, vhost and its key for
/// the asked sort column as the item gave them.
#[derive(Debug)]
pub struct Row {
    pub v: Value,
    pub name: String,
    pub vhost: String,
    key: Option<OwnedKey>,
}

#[derive(Debug, Clone)]
enum OwnedKey {
    Num(f64),
    Str(String),
}

impl Row {
    /// Its numbers were summed with other shards' (`routes::common::merge_summed`):
    /// the key its shard gave is not the sum's, so sort by the row itself.
    pub fn forget_key(&mut self) {
        self.key = None;
    }

    /// A row of its own (an object that is one shard's: a single queue).
    pub fn new(v: Value, name: &str, vhost: &str) -> Row {
        Row {
            v,
            name: name.to_owned(),
            vhost: vhost.to_owned(),
            key: None,
        }
    }
}

impl Item for Row {
    fn name(&self) -> &str {
        &self.name
    }
    fn vhost(&self) -> &str {
        &self.vhost
    }
    fn sort_key(&self, _column: &str) -> Option<SortKey<'_>> {
        // Made for the one column the list is sorted by (see `part`).
        self.key.as_ref().map(|k| match k {
            OwnedKey::Num(n) => SortKey::Num(*n),
            OwnedKey::Str(s) => SortKey::Str(s),
        })
    }
    fn render(&self) -> Value {
        self.v.clone()
    }
}

/// This shard's [`Part`] of a list of `items`.
pub fn part<I: Item>(items: Vec<I>, p: &ListParams) -> Result<Part, ApiError> {
    let total = items.len();
    let items = sort(filter(items, p)?, p);
    let filtered = items.len();
    let keep = p.page.map_or(usize::MAX, |page| page.saturating_mul(p.page_size));
    let rows = (items.iter().take(keep))
        .map(|i| Row {
            v: i.render(),
            name: i.name().to_owned(),
            vhost: i.vhost().to_owned(),
            key: (p.sort.as_deref()).and_then(|col| i.sort_key(col)).map(|k| match k {
                SortKey::Num(n) => OwnedKey::Num(n),
                SortKey::Str(s) => OwnedKey::Str(s.to_owned()),
            }),
        })
        .collect();
    Ok(Part {
        rows,
        total,
        filtered,
        found: false,
        aside: Vec::new(),
    })
}

/// The reply to a list made of every shard's [`Part`]: what [`reply`] gives
/// for the items of all of them (sorted and paged again as one list).
pub fn merge(parts: Vec<Part>, p: &ListParams) -> Result<super::Reply, ApiError> {
    let total: usize = parts.iter().map(|x| x.total).sum();
    let filtered: usize = parts.iter().map(|x| x.filtered).sum();
    let rows = sort(parts.into_iter().flat_map(|x| x.rows).collect(), p);
    let values = rows.into_iter().map(|r| select(r.v, &p.columns));
    if p.page.is_none() {
        return Ok(raw_array(values));
    }
    Ok(super::Reply::Json(200, page_of(values, total, filtered, p)?))
}

/// `name=`: a case-insensitive substring, or with `use_regex=true` a
/// case-insensitive regular expression (as RabbitMQ).
fn filter<I: Item>(items: Vec<I>, p: &ListParams) -> Result<Vec<I>, ApiError> {
    let Some(name) = &p.name else { return Ok(items) };
    let pattern = if p.use_regex { name.clone() } else { regex::escape(name) };
    let re = regex::RegexBuilder::new(&pattern)
        .case_insensitive(true)
        .build()
        .map_err(|e| ApiError::bad_request(format!("invalid regex: {e}")))?;
    Ok(items.into_iter().filter(|i| re.is_match(i.name())).collect())
}

fn sort<I: Item>(mut items: Vec<I>, p: &ListParams) -> Vec<I> {
    match &p.sort {
        None => items.sort_unstable_by(|a, b| a.vhost().cmp(b.vhost()).then_with(|| a.name().cmp(b.name()))),
        Some(col) if items.first().is_none_or(|i| i.sort_key(col).is_some()) => {
            items.sort_by(|a, b| cmp_keys(a.sort_key(col), b.sort_key(col)));
        }
        Some(col) => {
            // No cheap key: render once and sort by the dotted path.
            let mut keyed: Vec<(Value, usize)> = items
                .iter()
                .enumerate()
                .map(|(i, it)| (lookup(&it.render(), col).cloned().unwrap_or(Value::Null), i))
                .collect();
            keyed.sort_by(|a, b| cmp_json(&a.0, &b.0));
            let mut slots: Vec<Option<I>> = items.into_iter().map(Some).collect();
            items = keyed
                .into_iter()
                .map(|(_, i)| slots[i].take().expect("each index once"))
                .collect();
        }
    }
    if p.sort_reverse {
        items.reverse();
    }
    items
}

fn cmp_keys(a: Option<SortKey<'_>>, b: Option<SortKey<'_>>) -> Ordering {
    match (a, b) {
        (Some(SortKey::Num(x)), Some(SortKey::Num(y))) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Some(SortKey::Str(x)), Some(SortKey::Str(y))) => x.cmp(y),
        (Some(SortKey::Num(_)), _) => Ordering::Less,
        (_, Some(SortKey::Num(_))) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

fn cmp_json(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// `a.b.c` in nested objects.
pub fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// `columns=name,message_stats.publish`: keeps only those (nested) keys.
fn select(v: Value, columns: &Option<Vec<String>>) -> Value {
    let Some(cols) = columns else { return v };
    let mut out = Map::new();
    for c in cols {
        let Some(found) = lookup(&v, c) else { continue };
        let mut parts: Vec<&str> = c.split('.').collect();
        let last = parts.pop().expect("split yields one part");
        let mut obj = &mut out;
        for p in parts {
            obj = obj
                .entry(p.to_owned())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("object");
        }
        obj.insert(last.to_owned(), found.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct It(&'static str, &'static str, u64);
    impl Item for It {
        fn name(&self) -> &str {
            self.1
        }
        fn vhost(&self) -> &str {
            self.0
        }
        fn sort_key(&self, c: &str) -> Option<SortKey<'_>> {
            (c == "messages").then_some(SortKey::Num(self.2 as f64))
        }
        fn render(&self) -> Value {
            serde_json::json!({"vhost": self.0, "name": self.1, "messages": self.2, "stats": {"n": 100 - self.2}})
        }
    }

    fn items() -> Vec<It> {
        vec![It("/", "b", 3), It("/", "a", 1), It("v", "a", 2), It("/", "Cab", 0)]
    }

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    fn names(v: &Value) -> Vec<String> {
        let arr = v.get("items").unwrap_or(v).as_array().unwrap();
        arr.iter()
            .map(|i| {
                format!(
                    "{}{}",
                    i["vhost"].as_str().unwrap_or(""),
                    i["name"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    #[test]
    fn default_order_is_vhost_then_name_and_no_page_is_a_plain_array() {
        let v = list(items(), &ListParams::parse(&q("")).unwrap()).unwrap();
        assert!(v.is_array());
        assert_eq!(names(&v), ["/Cab", "/a", "/b", "va"]);
    }

    #[test]
    fn paging_shape_and_bounds() {
        let v = list(items(), &ListParams::parse(&q("page=2&page_size=3")).unwrap()).unwrap();
        assert_eq!(v["filtered_count"], 4);
        assert_eq!(v["item_count"], 1);
        assert_eq!(v["page"], 2);
        assert_eq!(v["page_count"], 2);
        assert_eq!(v["page_size"], 3);
        assert_eq!(v["total_count"], 4);
        assert_eq!(names(&v), ["va"]);
        let e = list(items(), &ListParams::parse(&q("page=3&page_size=3")).unwrap()).unwrap_err();
        assert_eq!((e.status, e.error), (400, "page_out_of_range"));
        assert_eq!(
            ListParams::parse(&q("page=0")).unwrap_err().error,
            "invalid_pagination_parameters"
        );
        assert!(ListParams::parse(&q("page_size=501")).is_err());
        assert!(ListParams::parse(&q("page=x")).is_err());
        // An empty list still has a first page.
        let v = list(Vec::<It>::new(), &ListParams::parse(&q("page=1")).unwrap()).unwrap();
        assert_eq!(v["page_count"], 0);
    }

    #[test]
    fn name_filter_substring_and_regex_case_insensitive() {
        let v = list(items(), &ListParams::parse(&q("page=1&name=A")).unwrap()).unwrap();
        assert_eq!(names(&v), ["/Cab", "/a", "va"]);
        assert_eq!(v["filtered_count"], 3);
        assert_eq!(v["total_count"], 4);
        let v = list(
            items(),
            &ListParams::parse(&q("page=1&name=%5Ea%24&use_regex=true")).unwrap(),
        )
        .unwrap();
        assert_eq!(names(&v), ["/a", "va"]);
        let v = list(items(), &ListParams::parse(&q("name=.&use_regex=false")).unwrap()).unwrap();
        assert!(names(&v).is_empty(), "without use_regex the dot is literal");
        assert!(list(items(), &ListParams::parse(&q("name=(&use_regex=true")).unwrap()).is_err());
    }

    #[test]
    fn sort_by_cheap_key_by_json_path_and_reverse() {
        let v = list(items(), &ListParams::parse(&q("sort=messages")).unwrap()).unwrap();
        assert_eq!(names(&v), ["/Cab", "/a", "va", "/b"]);
        let v = list(items(), &ListParams::parse(&q("sort=stats.n")).unwrap()).unwrap();
        assert_eq!(names(&v), ["/b", "va", "/a", "/Cab"]);
        let v = list(
            items(),
            &ListParams::parse(&q("sort=messages&sort_reverse=true")).unwrap(),
        )
        .unwrap();
        assert_eq!(names(&v), ["/b", "va", "/a", "/Cab"]);
    }

    #[test]
    fn unpaged_reply_is_streamed_with_the_same_json() {
        let p = ListParams::parse(&q("sort=messages&columns=name")).unwrap();
        let want = list(items(), &p).unwrap();
        let Ok(crate::http::Reply::Raw { body, content_type, .. }) = reply(items(), &p) else {
            panic!("unpaged lists are streamed")
        };
        assert_eq!(content_type, "application/json");
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), want);
        let paged = reply(items(), &ListParams::parse(&q("page=1")).unwrap()).unwrap();
        assert!(matches!(paged, crate::http::Reply::Json(200, _)));
    }

    #[test]
    fn columns_keep_nested_keys() {
        let v = list(
            items(),
            &ListParams::parse(&q("columns=name,stats.n&sort=messages")).unwrap(),
        )
        .unwrap();
        assert_eq!(v[0], serde_json::json!({"name": "Cab", "stats": {"n": 100}}));
    }
}
