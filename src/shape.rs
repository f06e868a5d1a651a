//! The serde *format* of a message type, traced without a value, so that
//! both ends of a channel can check at open that they agree on it.
//!
//! Two processes each define "the same" message type, possibly in different
//! crates or modules. What must agree is not the Rust type (its
//! [`std::any::type_name`] differs) but what serde sees: the names serde
//! passes (container names, field names, variant names, after `rename`) and
//! the data model of every field. [`trace`] computes that as a [`Shape`]: a
//! canonical string, equal for two types exactly when their serde formats are
//! equal, and a short label for error messages.
//!
//! # What is traced
//!
//! [`trace`] runs `T::deserialize` against a [`Deserializer`] of its own that
//! reads no input: every `deserialize_*` call records the format it was asked
//! for and feeds the visitor a value of that format (`0`, `false`, `'a'`,
//! `""`, empty bytes, one element for a sequence or a map, `Some` for an
//! option, one chosen variant for an enum). It reports itself as not
//! human-readable, like the binary codecs the channel uses, so that types
//! such as `IpAddr` or `SystemTime` take their compact form. Recorded are:
//!
//! * primitives: `bool`, `i8`..`i128`, `u8`..`u128`, `f32`, `f64`, `char`,
//!   `str` (`String` and `&str` alike), `bytes` (`deserialize_bytes` and
//!   `deserialize_byte_buf` alike) and `()`;
//! * `Option<T>`, sequences `[T]`, tuples `(A, B)` (also arrays: `[u8; 4]` is
//!   `(u8, u8, u8, u8)`) and maps `{K: V}`;
//! * named containers, by the name serde passes: unit, newtype, tuple and
//!   field structs, and enums with every one of their variants (unit,
//!   newtype, tuple and struct variants).
//!
//! The canonical string is the root format followed by the definition of
//! every named container reached, sorted by name, for example
//! `Rec; struct Rec { level: u8, msg: str }`. Names that are not plain
//! identifiers are quoted. Two different Rust types that share a name (a
//! generic `Wrapper<T>` used with two `T`s) but not a format are told apart
//! as `Wrapper#1` and `Wrapper#2`, numbered in the order the trace meets
//! them; containers with the same name and the same format are one.
//!
//! # Algorithm
//!
//! One deserialization shows one value, hence one variant per enum and, for a
//! recursive type, either an endless descent or an unexplored branch. The
//! tracer therefore runs the deserialization in *passes* and keeps, across
//! passes, a registry of the containers seen. A container is identified by
//! its serde name together with the type name of the visitor that
//! deserializes it (never shown, only used to tell apart two types of the
//! same name); its definition is merged from every place and pass it was
//! seen in, a part left unknown in one place (the element of a sequence that
//! was given empty) being filled from another.
//!
//! * **Enums.** For each enum the registry knows which variants have been
//!   traced, how many deserialization steps each took (its cost) and which
//!   are being deserialized right now, further up the current descent. At
//!   each enum reached the tracer picks the first variant not yet traced and
//!   not on the current descent; if there is none, a traced variant that is
//!   not on the current descent, preferring one whose contents lead to an
//!   enum that still misses variants, then the cheapest (a unit variant, or
//!   the base case of a recursive enum). Passes are repeated until every
//!   variant of every enum reached has been traced; a pass that traces no new
//!   variant while some are missing ends the trace with an error.
//! * **Recursion through options, sequences and maps.** A *site* is the pair
//!   (innermost named container being deserialized, visitor type of the
//!   option, sequence or map). The first time a site is entered on a descent
//!   it gets `Some`, one element or one entry; entered again while it is
//!   still open further up, it gets `None` or an empty collection, which ends
//!   the recursion (`struct Tree { kids: Vec<Tree> }` gives a tree of depth
//!   two). The outermost instance of every container is never cut, so the
//!   parts left unknown by a cut are filled from it. There are finitely many
//!   sites, so this bounds the descent.
//! * **Rejected values.** A visitor that rejects the value it is given (`0`
//!   for `NonZeroU32`) is given another one (`1`, `true`, `'b'`, `"0"`, a
//!   non-empty byte string) in a further pass. An enum whose variant
//!   identifier rejects an index among the names serde gives is not traced
//!   (see below).
//! * **Bounds.** At most 4096 passes, 128 levels of nesting and four million
//!   `deserialize_*` calls in all; beyond them the trace fails rather than
//!   run away.
//!
//! # Limits: what returns an error
//!
//! The tracer never panics; a type it cannot describe returns a
//! [`TraceError`] saying why, and the caller falls back to the type's name:
//!
//! * a type that calls `deserialize_any`: `#[serde(untagged)]` and internally
//!   tagged (`#[serde(tag = "…")]`) enums, `#[serde(flatten)]`, self-describing
//!   types such as `serde_json::Value`; or `deserialize_ignored_any`;
//! * a value the type rejects even with the alternative value (a
//!   `#[serde(try_from)]` or hand-written check that neither accepts), or an
//!   adjacently tagged enum (its tag is a string that must name a variant);
//! * a type with no finite value (`struct Bad(Box<Bad>)`, an enum without
//!   variants), one nested deeper than 128 levels, or one too large for the
//!   bounds above;
//! * names that do not pair with what is read: serde lists aliases
//!   (`#[serde(alias)]`) among a struct's field names and an enum's variant
//!   names, so a struct that reads fewer fields than it names, or an enum
//!   whose identifier rejects the index of one of its names, is refused
//!   (else two different formats could trace alike: an alias in the middle
//!   shifts every later name);
//! * a `Deserialize` impl that asks for different formats on different runs,
//!   or leaves part of a format unexplored.
#![deny(unsafe_code)]

use std::any::type_name;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::de::value::U32Deserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

/// Most deserialization passes one trace may run.
const MAX_PASSES: usize = 4096;
/// Deepest nesting of containers, options and collections one pass may reach.
const MAX_DEPTH: usize = 128;
/// Most `deserialize_*` calls one trace may make, over all its passes.
const MAX_STEPS: u64 = 4_000_000;
/// Longest label, in characters, before it is cut with `…`.
const LABEL_MAX: usize = 200;
/// The innermost container of a site that is inside no named container.
const ROOT: usize = usize::MAX;

/// The serde format of a message type, as computed by [`trace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Canonical, complete description: the root format plus the definition of every named
    /// container (struct, tuple struct, newtype struct, unit struct, enum with ALL its variants),
    /// sorted by name. Two types have the same serde format iff their canonical strings are equal.
    pub(crate) canonical: String,
    /// Short readable description of the root for error messages, such as
    /// `Rec { level: u8, msg: str }` or `[Rec]`; nested named types are shown by name only, and
    /// the label is cut at about 200 characters with `…`.
    pub(crate) label: String,
}

/// Why a type's format could not be traced; the message says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceError(pub(crate) String);

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

/// Traces the serde format of `T` without a value of it: see the module docs.
///
/// Returns an error, never panics, for a type that cannot be traced (one that uses
/// `deserialize_any`, such as an untagged enum or a flattened struct, among others).
pub(crate) fn trace<T: DeserializeOwned>() -> Result<Shape, TraceError> {
    let mut tracer = Tracer::default();
    let mut root = Fmt::Unknown;
    let mut passes = 0;
    loop {
        passes += 1;
        if passes > MAX_PASSES {
            return Err(TraceError(format!(
                "no complete trace after {MAX_PASSES} passes"
            )));
        }
        tracer.begin_pass();
        let result = traced(&mut tracer, std::marker::PhantomData::<T>);
        if let Some(message) = tracer.fatal.take() {
            return Err(TraceError(message));
        }
        let fmt = match result {
            Ok((_, fmt)) => fmt,
            Err(_) if tracer.retry => continue,
            Err(e) => {
                return Err(TraceError(format!(
                    "a value given while tracing was rejected: {e}"
                )))
            }
        };
        merge(&mut root, fmt).map_err(|()| {
            TraceError("the type asks for different formats on different runs".into())
        })?;
        match tracer.missing_variants() {
            None => break,
            Some(missing) if !tracer.progress => {
                return Err(TraceError(format!(
                    "variants that no pass could reach: {missing}"
                )))
            }
            Some(_) => {}
        }
    }
    tracer.finish(&root)
}

/// The format of one value; named containers are referred to by registry index.
#[derive(Debug, Clone, PartialEq)]
enum Fmt {
    /// A primitive, by its name (`u8`, `str`, `bytes`, `()`, ...).
    Prim(&'static str),
    Option(Box<Fmt>),
    Seq(Box<Fmt>),
    Tuple(Vec<Fmt>),
    Map(Box<Fmt>, Box<Fmt>),
    /// A named container: an index into [`Tracer::entries`].
    Named(usize),
    /// Not seen yet (the element of a sequence that was given empty).
    Unknown,
}

/// The contents of a struct or of an enum variant.
#[derive(Debug, Clone, PartialEq)]
enum Body {
    Unit,
    Newtype(Fmt),
    Tuple(Vec<Fmt>),
    Struct(Vec<(&'static str, Fmt)>),
}

/// What the registry knows of a named container.
#[derive(Debug)]
enum Def {
    /// A struct met but not yet deserialized to the end.
    Pending,
    /// A unit, newtype, tuple or field struct.
    Plain(Body),
    Enum(EnumDef),
}

/// What the registry knows of an enum.
#[derive(Debug)]
struct EnumDef {
    variants: &'static [&'static str],
    /// The contents of every variant traced so far.
    bodies: Vec<Option<Body>>,
    /// The fewest deserialization steps each traced variant took.
    cost: Vec<u64>,
    /// How many times each variant is on the current descent.
    busy: Vec<u32>,
    /// Whether each variant's contents lead to an enum that misses variants.
    wanted: Vec<bool>,
}

/// One named container of the registry.
#[derive(Debug)]
struct Entry {
    name: &'static str,
    def: Def,
}

/// State shared by all passes of one trace.
#[derive(Default)]
struct Tracer {
    /// Named containers, in the order the trace first met them.
    entries: Vec<Entry>,
    /// Enums whose identifier was given the index past its names (see
    /// `Probe`).
    probed: HashSet<usize>,
    /// Registry index by (serde name, visitor type name).
    ids: HashMap<(&'static str, &'static str), usize>,
    /// The named containers being deserialized, innermost last.
    stack: Vec<usize>,
    /// The option, sequence and map sites open on the current descent.
    sites: Vec<(usize, &'static str)>,
    depth: usize,
    steps: u64,
    /// Visitor types that rejected the first value and are given the alternative.
    alt: HashSet<&'static str>,
    /// A value was rejected for the first time: the pass is worth running again.
    retry: bool,
    /// This pass met a new container or traced a new variant.
    progress: bool,
    /// Why the trace cannot succeed, whatever the type does with the error.
    fatal: Option<String>,
}

/// The deserializer's error: a visitor's message or one of the tracer's.
#[derive(Debug)]
struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        Error(msg.to_string())
    }
}

impl Tracer {
    fn begin_pass(&mut self) {
        self.stack.clear();
        self.sites.clear();
        self.depth = 0;
        self.retry = false;
        self.progress = false;
        for entry in &mut self.entries {
            if let Def::Enum(e) = &mut entry.def {
                e.busy.iter_mut().for_each(|b| *b = 0);
            }
        }
        self.mark_wanted();
    }

    /// Ends the trace: whatever the type does with the error, the trace fails.
    fn fail(&mut self, message: String) -> Error {
        let error = Error(message.clone());
        self.fatal.get_or_insert(message);
        error
    }

    fn step(&mut self) -> Result<(), Error> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.fail(format!(
                "the type is too large to trace (more than {MAX_STEPS} steps)"
            )));
        }
        Ok(())
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.fail(format!(
                "nesting deeper than {MAX_DEPTH} levels (a type with no finite value, or too deep)"
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// A visitor rejected the value it was given directly.
    fn rejected(&mut self, visitor: &'static str) {
        if self.alt.insert(visitor) {
            self.retry = true;
        }
    }

    fn site<V>(&self) -> (usize, &'static str) {
        (self.stack.last().copied().unwrap_or(ROOT), type_name::<V>())
    }

    /// Opens the site of visitor `V` and says so, or says it is open already.
    fn open_site<V>(&mut self) -> bool {
        let site = self.site::<V>();
        if self.sites.contains(&site) {
            false
        } else {
            self.sites.push(site);
            true
        }
    }

    /// The registry index of the container `name` deserialized by visitor `V`.
    fn entry<V>(
        &mut self,
        name: &'static str,
        variants: Option<&'static [&'static str]>,
    ) -> Result<usize, Error> {
        let key = (name, type_name::<V>());
        let id = match self.ids.get(&key) {
            Some(&id) => id,
            None => {
                let def = match variants {
                    None => Def::Pending,
                    Some(variants) => Def::Enum(EnumDef {
                        variants,
                        bodies: vec![None; variants.len()],
                        cost: vec![u64::MAX; variants.len()],
                        busy: vec![0; variants.len()],
                        wanted: vec![false; variants.len()],
                    }),
                };
                self.entries.push(Entry { name, def });
                self.ids.insert(key, self.entries.len() - 1);
                self.progress = true;
                return Ok(self.entries.len() - 1);
            }
        };
        let same = match (&self.entries[id].def, variants) {
            (Def::Enum(e), Some(variants)) => e.variants == variants,
            (Def::Enum(_), None) | (_, Some(_)) => false,
            _ => true,
        };
        if same {
            Ok(id)
        } else {
            Err(self.fail(format!(
                "`{name}` is deserialized as different kinds of container"
            )))
        }
    }

    /// Records the contents of a struct, merged with what was known.
    fn commit_plain(&mut self, id: usize, body: Body) -> Result<(), Error> {
        let entry = &mut self.entries[id];
        let ok = match &mut entry.def {
            def @ Def::Pending => {
                *def = Def::Plain(body);
                true
            }
            Def::Plain(known) => merge_body(known, body).is_ok(),
            Def::Enum(_) => false,
        };
        if ok {
            Ok(())
        } else {
            let message = format!("`{}` is deserialized with different formats", entry.name);
            Err(self.fail(message))
        }
    }

    /// Records the contents of variant `index` of enum `id`, merged with what was known.
    fn commit_variant(
        &mut self,
        id: usize,
        index: usize,
        body: Body,
        cost: u64,
    ) -> Result<(), Error> {
        let entry = &mut self.entries[id];
        let Def::Enum(e) = &mut entry.def else {
            return Err(self.fail("internal: an enum entry is not an enum".into()));
        };
        let ok = match &mut e.bodies[index] {
            slot @ None => {
                *slot = Some(body);
                self.progress = true;
                true
            }
            Some(known) => merge_body(known, body).is_ok(),
        };
        if cost < e.cost[index] {
            // A cheaper variant may change later choices: not stuck yet.
            e.cost[index] = cost;
            self.progress = true;
        }
        if ok {
            Ok(())
        } else {
            let message = format!(
                "variant `{}` of `{}` is deserialized with different formats",
                e.variants[index], entry.name
            );
            Err(self.fail(message))
        }
    }

    /// The variant to deserialize at this occurrence of enum `id`.
    fn choose(&self, id: usize) -> usize {
        let Def::Enum(e) = &self.entries[id].def else {
            return 0;
        };
        let n = e.variants.len();
        if let Some(i) = (0..n).find(|&i| e.bodies[i].is_none() && e.busy[i] == 0) {
            return i;
        }
        (0..n)
            .filter(|&i| e.bodies[i].is_some())
            .min_by_key(|&i| (e.busy[i] > 0, !e.wanted[i], e.cost[i], i))
            .unwrap_or(0)
    }

    /// Computes which traced variants lead to an enum that misses variants.
    fn mark_wanted(&mut self) {
        // `reaches[id]`: container `id` is, or leads to, an enum missing variants.
        let mut reaches: Vec<bool> = self
            .entries
            .iter()
            .map(|entry| match &entry.def {
                Def::Enum(e) => e.bodies.iter().any(Option::is_none),
                _ => false,
            })
            .collect();
        let mut changed = true;
        while changed {
            changed = false;
            for id in 0..self.entries.len() {
                if !reaches[id] && def_refs(&self.entries[id].def).iter().any(|&r| reaches[r]) {
                    reaches[id] = true;
                    changed = true;
                }
            }
        }
        for entry in &mut self.entries {
            if let Def::Enum(e) = &mut entry.def {
                for (wanted, body) in e.wanted.iter_mut().zip(&e.bodies) {
                    let mut refs = Vec::new();
                    if let Some(body) = body {
                        body_refs(body, &mut refs);
                    }
                    *wanted = refs.iter().any(|&r| reaches[r]);
                }
            }
        }
    }

    /// The enums that miss variants and the variants they miss, if any.
    fn missing_variants(&self) -> Option<String> {
        let missing: Vec<String> = self
            .entries
            .iter()
            .filter_map(|entry| match &entry.def {
                Def::Enum(e) => {
                    let names: Vec<&str> = e
                        .variants
                        .iter()
                        .zip(&e.bodies)
                        .filter(|(_, body)| body.is_none())
                        .map(|(name, _)| *name)
                        .collect();
                    (!names.is_empty()).then(|| format!("{}::{{{}}}", entry.name, names.join(", ")))
                }
                _ => None,
            })
            .collect();
        (!missing.is_empty()).then(|| missing.join(", "))
    }

    /// Checks the registry is complete and renders the shape.
    fn finish(&self, root: &Fmt) -> Result<Shape, TraceError> {
        let incomplete = |what: &str| {
            TraceError(format!(
                "the trace left part of {what} unexplored (a Deserialize impl that reads fewer elements than it is given?)"
            ))
        };
        if has_unknown(root) {
            return Err(incomplete("the root"));
        }
        // The containers reached from the root, in registry (discovery) order.
        let mut reached = vec![false; self.entries.len()];
        let mut todo = Vec::new();
        fmt_refs(root, &mut todo);
        while let Some(id) = todo.pop() {
            if !std::mem::replace(&mut reached[id], true) {
                todo.extend(def_refs(&self.entries[id].def));
            }
        }
        let order: Vec<usize> = (0..self.entries.len()).filter(|&id| reached[id]).collect();
        for &id in &order {
            let entry = &self.entries[id];
            let complete = match &entry.def {
                Def::Pending => false,
                Def::Plain(body) => !body_has_unknown(body),
                Def::Enum(e) => e
                    .bodies
                    .iter()
                    .all(|body| body.as_ref().is_some_and(|b| !body_has_unknown(b))),
            };
            if !complete {
                return Err(incomplete(&format!("`{}`", entry.name)));
            }
        }

        // Containers with the same name and the same format are one: refine the
        // partition by name until each class's members have equal definitions.
        let mut class = vec![usize::MAX; self.entries.len()];
        let mut count = {
            let mut by_name: HashMap<&str, usize> = HashMap::new();
            for &id in &order {
                let next = by_name.len();
                class[id] = *by_name.entry(self.entries[id].name).or_insert(next);
            }
            by_name.len()
        };
        loop {
            let mut classes: HashMap<(usize, String), usize> = HashMap::new();
            let mut next_class = class.clone();
            for &id in &order {
                let mut signature = String::new();
                write_def(
                    &self.entries[id],
                    "",
                    true,
                    &|r| format!("#{}", class[r]),
                    &mut signature,
                );
                let next = classes.len();
                next_class[id] = *classes.entry((class[id], signature)).or_insert(next);
            }
            class = next_class;
            if classes.len() == count {
                break;
            }
            count = classes.len();
        }

        // Display names: the serde name, numbered when several formats share it.
        let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut first: Vec<Option<usize>> = vec![None; count];
        for &id in &order {
            if first[class[id]].is_none() {
                first[class[id]] = Some(id);
                members
                    .entry(self.entries[id].name)
                    .or_default()
                    .push(class[id]);
            }
        }
        let mut display = vec![String::new(); count];
        for (name, classes) in &members {
            for (k, &c) in classes.iter().enumerate() {
                display[c] = if classes.len() == 1 {
                    quote(name)
                } else {
                    format!("{}#{}", quote(name), k + 1)
                };
            }
        }
        let name_of = |id: usize| display[class[id]].clone();

        let mut canonical = String::new();
        write_fmt(root, &name_of, &mut canonical);
        let mut defs: BTreeMap<&str, String> = BTreeMap::new();
        for (c, id) in first.iter().enumerate() {
            if let Some(id) = *id {
                let mut def = String::new();
                write_def(&self.entries[id], &display[c], true, &name_of, &mut def);
                defs.insert(&display[c], def);
            }
        }
        for def in defs.values() {
            canonical.push_str("; ");
            canonical.push_str(def);
        }

        let mut label = String::new();
        match root {
            Fmt::Named(id) => write_def(
                &self.entries[*id],
                &name_of(*id),
                false,
                &name_of,
                &mut label,
            ),
            _ => write_fmt(root, &name_of, &mut label),
        }
        if label.chars().count() > LABEL_MAX {
            label = label.chars().take(LABEL_MAX - 1).collect();
            label.push('…');
        }
        Ok(Shape { canonical, label })
    }
}

/// Merges format `new` into `known`; an unknown part takes the other's.
fn merge(known: &mut Fmt, new: Fmt) -> Result<(), ()> {
    match (known, new) {
        (_, Fmt::Unknown) => Ok(()),
        (known @ Fmt::Unknown, new) => {
            *known = new;
            Ok(())
        }
        (Fmt::Prim(a), Fmt::Prim(b)) if *a == b => Ok(()),
        (Fmt::Named(a), Fmt::Named(b)) if *a == b => Ok(()),
        (Fmt::Option(a), Fmt::Option(b)) | (Fmt::Seq(a), Fmt::Seq(b)) => merge(a, *b),
        (Fmt::Map(ka, va), Fmt::Map(kb, vb)) => {
            merge(ka, *kb)?;
            merge(va, *vb)
        }
        (Fmt::Tuple(a), Fmt::Tuple(b)) => merge_all(a, b),
        _ => Err(()),
    }
}

fn merge_all(known: &mut [Fmt], new: Vec<Fmt>) -> Result<(), ()> {
    if known.len() != new.len() {
        return Err(());
    }
    known.iter_mut().zip(new).try_for_each(|(a, b)| merge(a, b))
}

fn merge_body(known: &mut Body, new: Body) -> Result<(), ()> {
    match (known, new) {
        (Body::Unit, Body::Unit) => Ok(()),
        (Body::Newtype(a), Body::Newtype(b)) => merge(a, b),
        (Body::Tuple(a), Body::Tuple(b)) => merge_all(a, b),
        (Body::Struct(a), Body::Struct(b)) => {
            if a.len() != b.len() || a.iter().zip(&b).any(|((x, _), (y, _))| x != y) {
                return Err(());
            }
            a.iter_mut()
                .zip(b)
                .try_for_each(|((_, x), (_, y))| merge(x, y))
        }
        _ => Err(()),
    }
}

fn fmt_refs(fmt: &Fmt, out: &mut Vec<usize>) {
    match fmt {
        Fmt::Named(id) => out.push(*id),
        Fmt::Option(f) | Fmt::Seq(f) => fmt_refs(f, out),
        Fmt::Map(k, v) => {
            fmt_refs(k, out);
            fmt_refs(v, out);
        }
        Fmt::Tuple(fs) => fs.iter().for_each(|f| fmt_refs(f, out)),
        Fmt::Prim(_) | Fmt::Unknown => {}
    }
}

fn body_refs(body: &Body, out: &mut Vec<usize>) {
    match body {
        Body::Unit => {}
        Body::Newtype(f) => fmt_refs(f, out),
        Body::Tuple(fs) => fs.iter().for_each(|f| fmt_refs(f, out)),
        Body::Struct(fs) => fs.iter().for_each(|(_, f)| fmt_refs(f, out)),
    }
}

fn def_refs(def: &Def) -> Vec<usize> {
    let mut out = Vec::new();
    match def {
        Def::Pending => {}
        Def::Plain(body) => body_refs(body, &mut out),
        Def::Enum(e) => e
            .bodies
            .iter()
            .flatten()
            .for_each(|b| body_refs(b, &mut out)),
    }
    out
}

fn has_unknown(fmt: &Fmt) -> bool {
    match fmt {
        Fmt::Unknown => true,
        Fmt::Option(f) | Fmt::Seq(f) => has_unknown(f),
        Fmt::Map(k, v) => has_unknown(k) || has_unknown(v),
        Fmt::Tuple(fs) => fs.iter().any(has_unknown),
        Fmt::Prim(_) | Fmt::Named(_) => false,
    }
}

fn body_has_unknown(body: &Body) -> bool {
    match body {
        Body::Unit => false,
        Body::Newtype(f) => has_unknown(f),
        Body::Tuple(fs) => fs.iter().any(has_unknown),
        Body::Struct(fs) => fs.iter().any(|(_, f)| has_unknown(f)),
    }
}

/// A serde name as shown: quoted unless it is a plain identifier.
fn quote(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

fn write_fmt(fmt: &Fmt, name_of: &dyn Fn(usize) -> String, out: &mut String) {
    match fmt {
        Fmt::Prim(p) => out.push_str(p),
        Fmt::Option(f) => {
            out.push_str("Option<");
            write_fmt(f, name_of, out);
            out.push('>');
        }
        Fmt::Seq(f) => {
            out.push('[');
            write_fmt(f, name_of, out);
            out.push(']');
        }
        Fmt::Tuple(fs) if fs.is_empty() => out.push_str("tuple()"),
        Fmt::Tuple(fs) => write_list(fs, name_of, out),
        Fmt::Map(k, v) => {
            out.push('{');
            write_fmt(k, name_of, out);
            out.push_str(": ");
            write_fmt(v, name_of, out);
            out.push('}');
        }
        Fmt::Named(id) => out.push_str(&name_of(*id)),
        Fmt::Unknown => out.push('?'),
    }
}

/// `(A, B)`, or `(A,)` for one element.
fn write_list(fs: &[Fmt], name_of: &dyn Fn(usize) -> String, out: &mut String) {
    out.push('(');
    for (i, f) in fs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_fmt(f, name_of, out);
    }
    if fs.len() == 1 {
        out.push(',');
    }
    out.push(')');
}

fn write_body(body: &Body, name_of: &dyn Fn(usize) -> String, out: &mut String) {
    match body {
        Body::Unit => {}
        Body::Newtype(f) => {
            out.push('(');
            write_fmt(f, name_of, out);
            out.push(')');
        }
        Body::Tuple(fs) => write_list(fs, name_of, out),
        Body::Struct(fs) if fs.is_empty() => out.push_str(" {}"),
        Body::Struct(fs) => {
            out.push_str(" { ");
            for (i, (name, f)) in fs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quote(name));
                out.push_str(": ");
                write_fmt(f, name_of, out);
            }
            out.push_str(" }");
        }
    }
}

/// A container's definition under the name `name`, with `struct `/`enum ` if `keyword`.
fn write_def(
    entry: &Entry,
    name: &str,
    keyword: bool,
    name_of: &dyn Fn(usize) -> String,
    out: &mut String,
) {
    match &entry.def {
        Def::Pending => {
            out.push_str(name);
            out.push_str(" ?");
        }
        Def::Plain(body) => {
            if keyword {
                out.push_str("struct ");
            }
            out.push_str(name);
            write_body(body, name_of, out);
        }
        Def::Enum(e) => {
            if keyword {
                out.push_str("enum ");
            }
            out.push_str(name);
            if e.variants.is_empty() {
                out.push_str(" {}");
                return;
            }
            out.push_str(" { ");
            for (i, (variant, body)) in e.variants.iter().zip(&e.bodies).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quote(variant));
                match body {
                    Some(body) => write_body(body, name_of, out),
                    None => out.push_str(" ?"),
                }
            }
            out.push_str(" }");
        }
    }
}

/// The tracing deserializer: records the format asked for into `out`.
struct De<'a> {
    t: &'a mut Tracer,
    out: &'a mut Fmt,
}

/// A primitive `deserialize_*` method: records `$name`, visits `$value`, or
/// `$alt` once the visitor's type has rejected `$value`.
macro_rules! primitive {
    ($method:ident, $visit:ident, $name:literal, $value:expr, $alt:expr) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.t.step()?;
            *self.out = Fmt::Prim($name);
            let alt = self.t.alt.contains(type_name::<V>());
            let result = visitor.$visit(if alt { $alt } else { $value });
            if result.is_err() {
                self.t.rejected(type_name::<V>());
            }
            result
        }
    };
}

impl<'de> Deserializer<'de> for De<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(self.t.fail(
            "`deserialize_any` is not traceable (untagged or internally tagged enum, flatten, \
             or a self-describing type)"
                .into(),
        ))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(self
            .t
            .fail("`deserialize_ignored_any` is not traceable".into()))
    }

    primitive!(deserialize_bool, visit_bool, "bool", false, true);
    primitive!(deserialize_i8, visit_i8, "i8", 0, 1);
    primitive!(deserialize_i16, visit_i16, "i16", 0, 1);
    primitive!(deserialize_i32, visit_i32, "i32", 0, 1);
    primitive!(deserialize_i64, visit_i64, "i64", 0, 1);
    primitive!(deserialize_i128, visit_i128, "i128", 0, 1);
    primitive!(deserialize_u8, visit_u8, "u8", 0, 1);
    primitive!(deserialize_u16, visit_u16, "u16", 0, 1);
    primitive!(deserialize_u32, visit_u32, "u32", 0, 1);
    primitive!(deserialize_u64, visit_u64, "u64", 0, 1);
    primitive!(deserialize_u128, visit_u128, "u128", 0, 1);
    primitive!(deserialize_f32, visit_f32, "f32", 0.0, 1.0);
    primitive!(deserialize_f64, visit_f64, "f64", 0.0, 1.0);
    primitive!(deserialize_char, visit_char, "char", 'a', 'b');
    primitive!(deserialize_str, visit_str, "str", "", "0");
    primitive!(
        deserialize_string,
        visit_string,
        "str",
        String::new(),
        "0".into()
    );
    primitive!(deserialize_identifier, visit_str, "str", "", "0");
    primitive!(deserialize_bytes, visit_bytes, "bytes", &[][..], &[0][..]);
    primitive!(
        deserialize_byte_buf,
        visit_byte_buf,
        "bytes",
        Vec::new(),
        vec![0]
    );

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.t.step()?;
        *self.out = Fmt::Prim("()");
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.t.step()?;
        if !self.t.open_site::<V>() {
            *self.out = Fmt::Option(Box::new(Fmt::Unknown));
            return visitor.visit_none();
        }
        self.t.enter()?;
        let mut inner = Fmt::Unknown;
        let value = visitor.visit_some(De {
            t: &mut *self.t,
            out: &mut inner,
        })?;
        self.t.leave();
        self.t.sites.pop();
        *self.out = Fmt::Option(Box::new(inner));
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.t.step()?;
        let open = self.t.open_site::<V>();
        self.t.enter()?;
        let (value, mut fmts) = visit_seq(self.t, usize::from(open), visitor)?;
        self.t.leave();
        if open {
            self.t.sites.pop();
        }
        *self.out = Fmt::Seq(Box::new(fmts.pop().unwrap_or(Fmt::Unknown)));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.t.step()?;
        self.t.enter()?;
        let (value, fmts) = visit_seq(self.t, len, visitor)?;
        self.t.leave();
        *self.out = Fmt::Tuple(fmts);
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.t.step()?;
        let open = self.t.open_site::<V>();
        self.t.enter()?;
        let mut key = Fmt::Unknown;
        let mut value_fmt = Fmt::Unknown;
        let value = visitor.visit_map(Map {
            t: &mut *self.t,
            left: usize::from(open),
            key: &mut key,
            value: &mut value_fmt,
        })?;
        self.t.leave();
        if open {
            self.t.sites.pop();
        }
        *self.out = Fmt::Map(Box::new(key), Box::new(value_fmt));
        Ok(value)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.t.step()?;
        let id = self.t.entry::<V>(name, None)?;
        let value = visitor.visit_unit()?;
        self.t.commit_plain(id, Body::Unit)?;
        *self.out = Fmt::Named(id);
        Ok(value)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.t.step()?;
        let id = self.t.entry::<V>(name, None)?;
        self.t.enter()?;
        self.t.stack.push(id);
        let mut inner = Fmt::Unknown;
        let value = visitor.visit_newtype_struct(De {
            t: &mut *self.t,
            out: &mut inner,
        })?;
        self.t.stack.pop();
        self.t.leave();
        self.t.commit_plain(id, Body::Newtype(inner))?;
        *self.out = Fmt::Named(id);
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.t.step()?;
        let id = self.t.entry::<V>(name, None)?;
        self.t.enter()?;
        self.t.stack.push(id);
        let (value, fmts) = visit_seq(self.t, len, visitor)?;
        self.t.stack.pop();
        self.t.leave();
        self.t.commit_plain(id, Body::Tuple(fmts))?;
        *self.out = Fmt::Named(id);
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.t.step()?;
        let id = self.t.entry::<V>(name, None)?;
        self.t.enter()?;
        self.t.stack.push(id);
        let (value, fmts) = visit_seq(self.t, fields.len(), visitor)?;
        self.t.stack.pop();
        self.t.leave();
        let body = struct_body(self.t, &format!("`{name}`"), fields, fmts)?;
        self.t.commit_plain(id, body)?;
        *self.out = Fmt::Named(id);
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.t.step()?;
        if variants.is_empty() {
            return Err(self
                .t
                .fail(format!("enum `{name}` has no variants: it has no value")));
        }
        let id = self.t.entry::<V>(name, Some(variants))?;
        if self.t.probed.insert(id) {
            // Met for the first time: this pass only asks its identifier
            // about the index past its names (see `Probe`), and is run
            // again.
            self.t.retry = true;
            return visitor.visit_enum(Probe {
                t: &mut *self.t,
                enum_name: name,
                variants: variants.len(),
            });
        }
        let index = self.t.choose(id);
        self.t.enter()?;
        self.t.stack.push(id);
        set_busy(self.t, id, index, true);
        let start = self.t.steps;
        let mut body = None;
        let value = visitor.visit_enum(Enum {
            t: &mut *self.t,
            index,
            enum_name: name,
            variants: variants.len(),
            body: &mut body,
        })?;
        let cost = self.t.steps - start;
        set_busy(self.t, id, index, false);
        self.t.stack.pop();
        self.t.leave();
        if let Some(body) = body {
            self.t.commit_variant(id, index, body, cost)?;
        }
        *self.out = Fmt::Named(id);
        Ok(value)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

fn set_busy(t: &mut Tracer, id: usize, index: usize, busy: bool) {
    if let Def::Enum(e) = &mut t.entries[id].def {
        if busy {
            e.busy[index] += 1;
        } else {
            e.busy[index] = e.busy[index].saturating_sub(1);
        }
    }
}

/// Visits a sequence of (at most) `len` elements; returns the formats of those read.
fn visit_seq<'de, V: Visitor<'de>>(
    t: &mut Tracer,
    len: usize,
    visitor: V,
) -> Result<(V::Value, Vec<Fmt>), Error> {
    let mut fmts = Vec::new();
    let value = visitor.visit_seq(Seq {
        t,
        left: len,
        out: &mut fmts,
    })?;
    Ok((value, fmts))
}

/// Deserializes one value through the tracer: the value, and its format.
fn traced<'de, S: DeserializeSeed<'de>>(t: &mut Tracer, seed: S) -> Result<(S::Value, Fmt), Error> {
    let mut fmt = Fmt::Unknown;
    let value = seed.deserialize(De { t, out: &mut fmt })?;
    Ok((value, fmt))
}

/// A struct's (or struct variant's) body from the names serde gave and
/// the formats read. serde lists aliases (`#[serde(alias)]`) among the
/// names: when fewer fields were read than named, the names no longer pair
/// with the fields, and the type is not traced.
fn struct_body(
    t: &mut Tracer,
    what: &str,
    fields: &'static [&'static str],
    fmts: Vec<Fmt>,
) -> Result<Body, Error> {
    if fmts.len() != fields.len() {
        return Err(t.fail(format!(
            "{what} reads {} fields but serde names {}: aliases (#[serde(alias)]) or a \
             custom Deserialize",
            fmts.len(),
            fields.len()
        )));
    }
    Ok(Body::Struct(fields.iter().copied().zip(fmts).collect()))
}

/// Elements of a sequence, a tuple or a struct.
struct Seq<'a> {
    t: &'a mut Tracer,
    left: usize,
    out: &'a mut Vec<Fmt>,
}

impl<'de> SeqAccess<'de> for Seq<'_> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let (value, fmt) = traced(self.t, seed)?;
        self.out.push(fmt);
        Ok(Some(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The entries of a map: one, or none at a recursion site.
struct Map<'a> {
    t: &'a mut Tracer,
    left: usize,
    key: &'a mut Fmt,
    value: &'a mut Fmt,
}

impl<'de> MapAccess<'de> for Map<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let (key, fmt) = traced(self.t, seed)?;
        merge(self.key, fmt).map_err(|()| self.t.fail("map keys of different formats".into()))?;
        Ok(Some(key))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let (value, fmt) = traced(self.t, seed)?;
        merge(self.value, fmt)
            .map_err(|()| self.t.fail("map values of different formats".into()))?;
        Ok(value)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The chosen variant of an enum.
struct Enum<'a> {
    t: &'a mut Tracer,
    index: usize,
    /// The enum's name, and how many variant names serde gave.
    enum_name: &'static str,
    variants: usize,
    body: &'a mut Option<Body>,
}

impl<'de, 'a> EnumAccess<'de> for Enum<'a> {
    type Error = Error;
    type Variant = Variant<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Variant<'a>), Error> {
        // The index, as the binary codecs encode a variant. An identifier
        // that rejects an index of the names serde gave is not the one the
        // names describe: `#[serde(alias)]` adds names without variants
        // (serde lists aliases among the variants' names), and a custom
        // identifier may map indices as it likes. Either way the position
        // of a name says nothing sure about the variant on the wire.
        let index = u32::try_from(self.index).unwrap_or(u32::MAX);
        match seed.deserialize(U32Deserializer::<Error>::new(index)) {
            Ok(tag) => Ok((
                tag,
                Variant {
                    t: self.t,
                    body: self.body,
                },
            )),
            Err(e) => Err(self.t.fail(format!(
                "the variant identifier rejects index {index} of the {} names serde gives \
                 for `{}` ({e}): aliases (#[serde(alias)]) or a custom identifier",
                self.variants, self.enum_name
            ))),
        }
    }
}

/// The first look at an enum: its identifier is given the index one past
/// the names serde gave. A derived identifier rejects it, unless a variant
/// is `#[serde(other)]` (which takes every index past the real variants)
/// or the identifier is hand-written. Then the names' positions cannot be
/// trusted (an alias adds a name and no variant, and `other` hides that
/// the index past the variants is an alias's), so the enum is not traced.
struct Probe<'a> {
    t: &'a mut Tracer,
    enum_name: &'static str,
    variants: usize,
}

impl<'de, 'a> EnumAccess<'de> for Probe<'a> {
    type Error = Error;
    type Variant = Variant<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Variant<'a>), Error> {
        let past = u32::try_from(self.variants).unwrap_or(u32::MAX);
        match seed.deserialize(U32Deserializer::<Error>::new(past)) {
            Ok(_) => Err(self.t.fail(format!(
                "the variant identifier of `{}` accepts index {past}, past its {} names: \
                 #[serde(other)] or a custom identifier, so the names' positions cannot be \
                 trusted",
                self.enum_name, self.variants
            ))),
            // As it should: this pass ends here, and is run again.
            Err(e) => Err(e),
        }
    }
}

/// The contents of the chosen variant.
struct Variant<'a> {
    t: &'a mut Tracer,
    body: &'a mut Option<Body>,
}

impl<'de> VariantAccess<'de> for Variant<'_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        *self.body = Some(Body::Unit);
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        let (value, fmt) = traced(self.t, seed)?;
        *self.body = Some(Body::Newtype(fmt));
        Ok(value)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        let (value, fmts) = visit_seq(self.t, len, visitor)?;
        *self.body = Some(Body::Tuple(fmts));
        Ok(value)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (value, fmts) = visit_seq(self.t, fields.len(), visitor)?;
        *self.body = Some(struct_body(self.t, "a struct variant", fields, fmts)?);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    // The test types are only ever built by serde: their fields are never read.
    #![allow(dead_code)]

    use super::*;
    use serde::{Deserialize, Deserializer};
    use std::collections::{BTreeMap, HashMap};
    use std::num::NonZeroU32;
    use std::time::Duration;

    fn shape<T: DeserializeOwned>() -> Shape {
        match trace::<T>() {
            Ok(shape) => shape,
            Err(e) => panic!("trace failed: {e}"),
        }
    }

    fn canonical<T: DeserializeOwned>() -> String {
        shape::<T>().canonical
    }

    fn error<T: DeserializeOwned>() -> String {
        match trace::<T>() {
            Ok(shape) => panic!("traced {shape:?}"),
            Err(e) => e.0,
        }
    }

    #[derive(Deserialize)]
    struct Rec {
        level: u8,
        msg: String,
    }

    /// The same format as [`Rec`], from another module.
    mod other {
        use serde::Deserialize;

        #[derive(Deserialize)]
        pub struct Rec {
            pub level: u8,
            pub msg: Box<str>,
        }

        #[derive(Deserialize)]
        pub struct Outer {
            pub rec: Rec,
            pub lvl: super::Level,
        }
    }

    #[derive(Deserialize)]
    enum Level {
        Debug,
        Info,
        Warn(u8),
        Err { code: u32 },
    }

    #[test]
    fn plain_struct() {
        let s = shape::<Rec>();
        assert_eq!(s.canonical, "Rec; struct Rec { level: u8, msg: str }");
        assert_eq!(s.label, "Rec { level: u8, msg: str }");
        assert_eq!(canonical::<other::Rec>(), s.canonical);
    }

    #[test]
    fn enum_with_every_variant_kind() {
        let s = shape::<Level>();
        assert_eq!(
            s.canonical,
            "Level; enum Level { Debug, Info, Warn(u8), Err { code: u32 } }"
        );
        assert_eq!(
            s.label,
            "Level { Debug, Info, Warn(u8), Err { code: u32 } }"
        );
    }

    #[test]
    fn primitives() {
        #[derive(Deserialize)]
        struct All(
            bool,
            i8,
            i16,
            i32,
            i64,
            i128,
            u8,
            u16,
            u32,
            u64,
            u128,
            f32,
            f64,
            char,
            String,
            (),
            Bytes,
        );
        struct Bytes;
        impl<'de> Deserialize<'de> for Bytes {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> de::Visitor<'de> for V {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Bytes, E> {
                        Ok(Bytes)
                    }
                    fn visit_byte_buf<E: de::Error>(self, _: Vec<u8>) -> Result<Bytes, E> {
                        Ok(Bytes)
                    }
                }
                d.deserialize_byte_buf(V)
            }
        }
        let s = shape::<All>();
        assert_eq!(
            s.label,
            "All(bool, i8, i16, i32, i64, i128, u8, u16, u32, u64, u128, f32, f64, char, str, \
             (), bytes)"
        );
        assert_eq!(shape::<char>().canonical, "char");
        assert_eq!(shape::<u128>().label, "u128");
        assert_eq!(shape::<String>().canonical, "str");
        assert_eq!(shape::<()>().canonical, "()");
    }

    #[test]
    fn nested_and_collections() {
        #[derive(Deserialize)]
        struct Batch {
            recs: Vec<Rec>,
            first: Option<Rec>,
            by_name: HashMap<String, Rec>,
            by_id: BTreeMap<u64, Vec<Option<u16>>>,
        }
        let s = shape::<Batch>();
        assert_eq!(
            s.canonical,
            "Batch; struct Batch { recs: [Rec], first: Option<Rec>, by_name: {str: Rec}, \
             by_id: {u64: [Option<u16>]} }; struct Rec { level: u8, msg: str }"
        );
        assert_eq!(
            s.label,
            "Batch { recs: [Rec], first: Option<Rec>, by_name: {str: Rec}, by_id: {u64: [Option<u16>]} }"
        );
        let v = shape::<Vec<Rec>>();
        assert_eq!(v.canonical, "[Rec]; struct Rec { level: u8, msg: str }");
        assert_eq!(v.label, "[Rec]");
        assert_eq!(
            canonical::<Option<HashMap<String, Rec>>>(),
            "Option<{str: Rec}>; struct Rec { level: u8, msg: str }"
        );
        assert_eq!(
            canonical::<BTreeMap<u8, Rec>>(),
            "{u8: Rec}; struct Rec { level: u8, msg: str }"
        );
        assert_eq!(
            canonical::<other::Outer>(),
            "Outer; enum Level { Debug, Info, Warn(u8), Err { code: u32 } }; \
             struct Outer { rec: Rec, lvl: Level }; struct Rec { level: u8, msg: str }"
        );
    }

    #[derive(Deserialize)]
    enum Top {
        A,
        B(Mid),
        C { mids: Vec<Mid>, tag: Option<Leaf> },
    }

    #[derive(Deserialize)]
    enum Mid {
        X(Leaf, u8),
        Y { leaf: Leaf },
        Z(Box<Leaf>),
    }

    #[derive(Deserialize)]
    enum Leaf {
        P,
        Q(i64),
        R(String, char),
        S { on: bool },
    }

    #[test]
    fn enums_nested_three_levels() {
        let s = shape::<Top>();
        assert_eq!(
            s.canonical,
            "Top; enum Leaf { P, Q(i64), R(str, char), S { on: bool } }; \
             enum Mid { X(Leaf, u8), Y { leaf: Leaf }, Z(Leaf) }; \
             enum Top { A, B(Mid), C { mids: [Mid], tag: Option<Leaf> } }"
        );
        assert_eq!(
            s.label,
            "Top { A, B(Mid), C { mids: [Mid], tag: Option<Leaf> } }"
        );
        // Also reached only through a struct and a sequence.
        #[derive(Deserialize)]
        struct Holder {
            tops: Vec<Option<Top>>,
        }
        assert!(
            canonical::<Holder>().contains("enum Leaf { P, Q(i64), R(str, char), S { on: bool } }")
        );
    }

    #[test]
    fn renames_show() {
        #[derive(Deserialize)]
        #[serde(rename = "Record")]
        struct Rec2 {
            #[serde(rename = "lvl")]
            level: u8,
            #[serde(rename = "the message")]
            msg: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            FirstOne,
            #[serde(rename = "2nd")]
            Second,
        }
        assert_eq!(
            canonical::<Rec2>(),
            "Record; struct Record { lvl: u8, \"the message\": str }"
        );
        assert_eq!(
            canonical::<Kind>(),
            "Kind; enum Kind { first_one, \"2nd\" }"
        );
    }

    #[test]
    fn recursive_types() {
        #[derive(Deserialize)]
        enum List {
            Nil,
            Cons(u32, Box<List>),
        }
        assert_eq!(
            canonical::<List>(),
            "List; enum List { Nil, Cons(u32, List) }"
        );
        // The recursive variant first: the base case is found one level down.
        #[derive(Deserialize)]
        enum Expr {
            Add(Box<Expr>, Box<Expr>),
            Neg(Box<Expr>),
            Lit(i32),
        }
        assert_eq!(
            canonical::<Expr>(),
            "Expr; enum Expr { Add(Expr, Expr), Neg(Expr), Lit(i32) }"
        );
        #[derive(Deserialize)]
        struct Tree {
            name: String,
            kids: Vec<Tree>,
        }
        assert_eq!(
            canonical::<Tree>(),
            "Tree; struct Tree { name: str, kids: [Tree] }"
        );
        #[derive(Deserialize)]
        struct Node {
            val: u8,
            next: Option<Box<Node>>,
        }
        assert_eq!(
            canonical::<Node>(),
            "Node; struct Node { val: u8, next: Option<Node> }"
        );
        #[derive(Deserialize)]
        struct Graph {
            nodes: BTreeMap<u32, Graph>,
        }
        assert_eq!(
            canonical::<Graph>(),
            "Graph; struct Graph { nodes: {u32: Graph} }"
        );
    }

    #[test]
    fn mutual_recursion() {
        #[derive(Deserialize)]
        struct A {
            b: Option<Box<B>>,
            e: Vec<E>,
        }
        #[derive(Deserialize)]
        struct B {
            a: Vec<A>,
        }
        #[derive(Deserialize)]
        enum E {
            ToA(Box<A>),
            ToB(B),
            Stop,
        }
        let s = shape::<A>();
        assert_eq!(
            s.canonical,
            "A; struct A { b: Option<B>, e: [E] }; struct B { a: [A] }; \
             enum E { ToA(A), ToB(B), Stop }"
        );
        assert_eq!(
            canonical::<E>(),
            "E; struct A { b: Option<B>, e: [E] }; struct B { a: [A] }; \
             enum E { ToA(A), ToB(B), Stop }"
        );
    }

    #[test]
    fn struct_kinds() {
        #[derive(Deserialize)]
        struct Pair(u8, String);
        #[derive(Deserialize)]
        struct Id(u64);
        #[derive(Deserialize)]
        struct Marker;
        #[derive(Deserialize)]
        struct Empty {}
        assert_eq!(canonical::<Pair>(), "Pair; struct Pair(u8, str)");
        assert_eq!(shape::<Pair>().label, "Pair(u8, str)");
        assert_eq!(canonical::<Id>(), "Id; struct Id(u64)");
        assert_eq!(canonical::<Marker>(), "Marker; struct Marker");
        assert_eq!(canonical::<Empty>(), "Empty; struct Empty {}");
        assert_eq!(canonical::<[u8; 4]>(), "(u8, u8, u8, u8)");
        assert_eq!(canonical::<(u8,)>(), "(u8,)");
    }

    #[test]
    fn std_types_with_checks() {
        assert_eq!(
            canonical::<Duration>(),
            "Duration; struct Duration { secs: u64, nanos: u32 }"
        );
        assert_eq!(canonical::<NonZeroU32>(), "u32");
        #[derive(Deserialize)]
        struct Checked {
            n: NonZeroU32,
            m: Option<std::num::NonZeroU8>,
            d: Duration,
        }
        assert_eq!(
            shape::<Checked>().label,
            "Checked { n: u32, m: Option<u8>, d: Duration }"
        );
        assert_eq!(canonical::<std::path::PathBuf>(), "str");
        assert_eq!(canonical::<Box<str>>(), "str");
        assert!(canonical::<std::time::SystemTime>().starts_with("SystemTime; struct SystemTime"));
        assert_eq!(
            canonical::<std::net::IpAddr>(),
            "IpAddr; enum IpAddr { V4((u8, u8, u8, u8)), \
             V6((u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8)) }"
        );
        assert!(canonical::<std::net::SocketAddr>().starts_with("SocketAddr; "));
        assert_eq!(canonical::<std::collections::HashSet<u8>>(), "[u8]");
    }

    #[test]
    fn skip_and_default() {
        #[derive(Deserialize)]
        struct WithSkip {
            a: u8,
            #[serde(skip)]
            cache: Vec<String>,
            b: u16,
        }
        #[derive(Deserialize)]
        struct WithDefault {
            a: u8,
            #[serde(default)]
            b: u16,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct AllDefault {
            a: u8,
            b: String,
        }
        assert_eq!(
            canonical::<WithSkip>(),
            "WithSkip; struct WithSkip { a: u8, b: u16 }"
        );
        assert_eq!(
            canonical::<WithDefault>(),
            "WithDefault; struct WithDefault { a: u8, b: u16 }"
        );
        assert_eq!(
            canonical::<AllDefault>(),
            "AllDefault; struct AllDefault { a: u8, b: str }"
        );
    }

    #[test]
    fn untraceable_types_are_errors() {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Untagged {
            A(u8),
            B(String),
        }
        #[derive(Deserialize)]
        struct Flat {
            a: u8,
            #[serde(flatten)]
            rec: Rec,
        }
        #[derive(Deserialize)]
        #[serde(tag = "type")]
        enum Internal {
            A { x: u8 },
        }
        #[derive(Deserialize)]
        struct Inside {
            v: Vec<Untagged>,
        }
        assert!(error::<Untagged>().contains("deserialize_any"));
        assert!(error::<Flat>().contains("deserialize_any"));
        assert!(error::<Internal>().contains("deserialize_any"));
        assert!(error::<Inside>().contains("deserialize_any"));
        assert!(error::<de::IgnoredAny>().contains("deserialize_ignored_any"));
        // Its tag is a string naming a variant: no value given is accepted.
        #[derive(Deserialize)]
        #[serde(tag = "t", content = "c")]
        enum Adjacent {
            A(u8),
        }
        assert!(error::<Adjacent>().contains("rejected"));
    }

    #[test]
    fn aliases_are_errors_not_shifted_names() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct FieldAlias {
            #[serde(alias = "lvl")]
            level: u8,
            msg: String,
        }
        assert!(
            error::<FieldAlias>().contains("alias"),
            "{}",
            error::<FieldAlias>()
        );
        // An alias in the middle of the names shifts every later one: with
        // names by position, these two would trace alike, and a receiver of
        // one would decode the other's `B(5)` as `C(5)`.
        mod a {
            #[derive(serde::Deserialize)]
            #[allow(dead_code)]
            pub enum E {
                #[serde(alias = "X")]
                A(u8),
                B(u16),
                C(u32),
            }
        }
        mod b {
            #[derive(serde::Deserialize)]
            #[allow(dead_code)]
            pub enum E {
                A(u8),
                X(u16),
                B(u32),
                C(u32),
            }
        }
        assert!(error::<a::E>().contains("alias"), "{}", error::<a::E>());
        assert_eq!(
            canonical::<b::E>(),
            "E; enum E { A(u8), X(u16), B(u32), C(u32) }"
        );
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Holder {
            e: Vec<a::E>,
        }
        assert!(error::<Holder>().contains("alias"));
        // With `#[serde(other)]` the index past the real variants is taken,
        // so the alias's extra name is not rejected: refused all the same.
        mod c {
            #[derive(serde::Deserialize)]
            #[allow(dead_code)]
            pub enum E {
                #[serde(alias = "X")]
                A(u8),
                B(u16),
                #[serde(other)]
                C,
            }
        }
        assert!(
            error::<c::E>().contains("serde(other)"),
            "{}",
            error::<c::E>()
        );
        // Aliases on a struct variant's fields.
        #[derive(Deserialize)]
        #[allow(dead_code)]
        enum StructVariant {
            V {
                #[serde(alias = "x")]
                a: u8,
                b: u16,
            },
        }
        assert!(
            error::<StructVariant>().contains("alias"),
            "{}",
            error::<StructVariant>()
        );
    }

    #[test]
    fn impossible_types_are_errors() {
        #[derive(Deserialize)]
        struct Bad(Box<Bad>);
        #[derive(Deserialize)]
        enum Never {}
        #[derive(Deserialize)]
        struct HasNever {
            a: u8,
            n: Option<Never>,
        }
        #[derive(Deserialize)]
        #[serde(try_from = "u8")]
        struct Odd(u8);
        impl TryFrom<u8> for Odd {
            type Error = &'static str;
            fn try_from(v: u8) -> Result<Self, Self::Error> {
                if v == 7 {
                    Ok(Odd(v))
                } else {
                    Err("not seven")
                }
            }
        }
        assert!(error::<Bad>().contains("nesting deeper"));
        assert!(error::<Never>().contains("no variants"));
        assert!(error::<HasNever>().contains("no variants"));
        assert!(error::<Odd>().contains("not seven"));
    }

    #[test]
    fn variants_reached_only_through_other_variants() {
        // `C` is cheaper than `A`, but `A` is the way to `E`'s other variants.
        #[derive(Deserialize)]
        enum X {
            C,
            A(E),
        }
        #[derive(Deserialize)]
        enum E {
            P,
            Q(u8),
            R { s: String },
        }
        assert_eq!(
            canonical::<X>(),
            "X; enum E { P, Q(u8), R { s: str } }; enum X { C, A(E) }"
        );
        #[derive(Deserialize)]
        enum Json {
            Null,
            Bool(bool),
            Num(f64),
            Str(String),
            Arr(Vec<Json>),
            Obj(BTreeMap<String, Json>),
        }
        let s = shape::<Option<Json>>();
        assert_eq!(
            s.canonical,
            "Option<Json>; enum Json { Null, Bool(bool), Num(f64), Str(str), Arr([Json]), \
             Obj({str: Json}) }"
        );
        assert_eq!(s.label, "Option<Json>");
        assert_eq!(
            canonical::<Result<u8, String>>(),
            "Result; enum Result { Ok(u8), Err(str) }"
        );
    }

    #[test]
    fn same_name_different_formats_are_told_apart() {
        #[derive(Deserialize)]
        struct Wrapper<T> {
            v: T,
        }
        #[derive(Deserialize)]
        struct Both {
            a: Wrapper<u8>,
            b: Wrapper<String>,
            c: Wrapper<u8>,
            d: other::Rec,
            e: Rec,
        }
        assert_eq!(
            canonical::<Both>(),
            "Both; struct Both { a: Wrapper#1, b: Wrapper#2, c: Wrapper#1, d: Rec, e: Rec }; \
             struct Rec { level: u8, msg: str }; struct Wrapper#1 { v: u8 }; \
             struct Wrapper#2 { v: str }"
        );
    }

    mod v1 {
        use serde::Deserialize;

        #[derive(Deserialize)]
        pub struct Msg {
            pub id: u32,
            pub kind: Kind,
            pub tags: Vec<String>,
        }

        #[derive(Deserialize)]
        pub enum Kind {
            Ping,
            Data(Vec<u8>),
        }
    }

    mod same {
        use serde::Deserialize;
        use std::collections::VecDeque;

        #[derive(Deserialize)]
        pub struct Msg {
            pub id: u32,
            pub kind: Kind,
            pub tags: VecDeque<Box<str>>,
        }

        #[derive(Deserialize)]
        pub enum Kind {
            Ping,
            Data(Box<[u8]>),
        }
    }

    mod extra_field {
        use serde::Deserialize;

        #[derive(Deserialize)]
        pub struct Msg {
            pub id: u32,
            pub kind: super::v1::Kind,
            pub tags: Vec<String>,
            pub pid: u32,
        }
    }

    mod field_type {
        use serde::Deserialize;

        #[derive(Deserialize)]
        pub struct Msg {
            pub id: u64,
            pub kind: super::v1::Kind,
            pub tags: Vec<String>,
        }
    }

    mod field_name {
        use serde::Deserialize;

        #[derive(Deserialize)]
        pub struct Msg {
            pub ident: u32,
            pub kind: super::v1::Kind,
            pub tags: Vec<String>,
        }
    }

    mod extra_variant {
        use serde::Deserialize;

        #[derive(Deserialize)]
        pub struct Msg {
            pub id: u32,
            pub kind: Kind,
            pub tags: Vec<String>,
        }

        #[derive(Deserialize)]
        pub enum Kind {
            Ping,
            Data(Vec<u8>),
            Pong,
        }
    }

    mod nested_type {
        use serde::Deserialize;

        #[derive(Deserialize)]
        pub struct Msg {
            pub id: u32,
            pub kind: Kind,
            pub tags: Vec<String>,
        }

        #[derive(Deserialize)]
        pub enum Kind {
            Ping,
            Data(Vec<u16>),
        }
    }

    #[test]
    fn equal_formats_have_equal_canonicals() {
        let v1 = canonical::<v1::Msg>();
        assert_eq!(
            v1,
            "Msg; enum Kind { Ping, Data([u8]) }; struct Msg { id: u32, kind: Kind, tags: [str] }"
        );
        assert_eq!(canonical::<same::Msg>(), v1);
        assert_eq!(shape::<same::Msg>().label, shape::<v1::Msg>().label);
        // Tracing twice gives the same result.
        assert_eq!(canonical::<v1::Msg>(), v1);
    }

    #[test]
    fn changed_formats_have_different_canonicals() {
        let v1 = canonical::<v1::Msg>();
        let changed = [
            canonical::<extra_field::Msg>(),
            canonical::<field_type::Msg>(),
            canonical::<field_name::Msg>(),
            canonical::<extra_variant::Msg>(),
            canonical::<nested_type::Msg>(),
        ];
        for (i, c) in changed.iter().enumerate() {
            assert_ne!(*c, v1);
            for other in &changed[i + 1..] {
                assert_ne!(c, other);
            }
        }
        assert_eq!(
            shape::<extra_field::Msg>().label,
            "Msg { id: u32, kind: Kind, tags: [str], pid: u32 }"
        );
        // A renamed container is a different format.
        #[derive(Deserialize)]
        struct Record {
            level: u8,
            msg: String,
        }
        assert_ne!(canonical::<Record>(), canonical::<Rec>());
    }

    #[test]
    fn long_labels_are_cut() {
        #[derive(Deserialize)]
        struct Long {
            a_rather_long_field_name_0: Vec<Option<BTreeMap<String, u64>>>,
            a_rather_long_field_name_1: Vec<Option<BTreeMap<String, u64>>>,
            a_rather_long_field_name_2: Vec<Option<BTreeMap<String, u64>>>,
            a_rather_long_field_name_3: Vec<Option<BTreeMap<String, u64>>>,
            a_rather_long_field_name_4: Vec<Option<BTreeMap<String, u64>>>,
        }
        let s = shape::<Long>();
        assert_eq!(s.label.chars().count(), LABEL_MAX);
        assert!(s.label.ends_with('…'));
        assert!(s
            .canonical
            .ends_with("a_rather_long_field_name_4: [Option<{str: u64}>] }"));
    }
}
