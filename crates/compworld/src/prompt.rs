//! The prompt language: syntax (an AST that prints to and parses from text) and its explicit
//! meaning (phrases, counts and relations that a correct image satisfies).
//!
//! Grammar (closed vocabulary, see [`VOCABULARY`]):
//!
//! ```text
//! prompt    := clause ("and" clause)*
//! clause    := composite | np [relation np]
//! np        := det size? texture? colour? noun ("the colour of" entity)?
//! det       := "a" | "an" | number | "as many" ... "as a" shape "has corners"
//!            | number "plus" number | number "minus" number
//! noun      := shape | "shape" | "shape with" (no|three|four) "corners" ("and a" (flat|pointed) "top")?
//!            | "plus sign"                       (plurals after numbers above one)
//! relation  := "on the left of" | "on the right of" | "on the top of" | "on the bottom of"
//!            | "near" | "next to" | "in front of" | "behind" | "hidden by"
//!            | "inside" | "around" | "touching"
//! composite := "a traffic light" | "a house" | "a pine tree" | "a target"
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::world::{Colour, Shape, Size, Texture};

/// The eight T2I-CompBench categories and the four reasoning dimensions (T2I-ReasonBench-like).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Category {
    #[serde(rename = "color")]
    Colour,
    #[serde(rename = "shape")]
    Shape,
    #[serde(rename = "texture")]
    Texture,
    #[serde(rename = "spatial")]
    Spatial2d,
    #[serde(rename = "3d_spatial")]
    Spatial3d,
    #[serde(rename = "numeracy")]
    Numeracy,
    #[serde(rename = "non_spatial")]
    NonSpatial,
    #[serde(rename = "complex")]
    Complex,
    #[serde(rename = "knowledge")]
    Knowledge,
    #[serde(rename = "arithmetic")]
    Arithmetic,
    #[serde(rename = "geometry")]
    Geometry,
    #[serde(rename = "composite")]
    Composite,
}

impl Category {
    /// All twelve, CompBench-style first.
    pub const ALL: &'static [Category] = &[
        Category::Colour,
        Category::Shape,
        Category::Texture,
        Category::Spatial2d,
        Category::Spatial3d,
        Category::Numeracy,
        Category::NonSpatial,
        Category::Complex,
        Category::Knowledge,
        Category::Arithmetic,
        Category::Geometry,
        Category::Composite,
    ];
    /// The eight CompBench-style categories.
    pub const COMPBENCH: &'static [Category] = &[
        Category::Colour,
        Category::Shape,
        Category::Texture,
        Category::Spatial2d,
        Category::Spatial3d,
        Category::Numeracy,
        Category::NonSpatial,
        Category::Complex,
    ];
    /// The four reasoning dimensions.
    pub const REASONING: &'static [Category] = &[
        Category::Knowledge,
        Category::Arithmetic,
        Category::Geometry,
        Category::Composite,
    ];

    /// Name as used in files (T2I-CompBench's file stems for its eight categories).
    pub fn name(self) -> &'static str {
        match self {
            Category::Colour => "color",
            Category::Shape => "shape",
            Category::Texture => "texture",
            Category::Spatial2d => "spatial",
            Category::Spatial3d => "3d_spatial",
            Category::Numeracy => "numeracy",
            Category::NonSpatial => "non_spatial",
            Category::Complex => "complex",
            Category::Knowledge => "knowledge",
            Category::Arithmetic => "arithmetic",
            Category::Geometry => "geometry",
            Category::Composite => "composite",
        }
    }

    /// Parses [`Category::name`].
    pub fn from_name(s: &str) -> Result<Self> {
        Category::ALL
            .iter()
            .copied()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Category::ALL.iter().map(|c| c.name()).collect();
                Error::UnknownCategory(s.to_string(), names.join(", "))
            })
    }

    /// Whether this is one of the reasoning dimensions.
    pub fn is_reasoning(self) -> bool {
        Category::REASONING.contains(&self)
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Relations between two objects. `Apart` and `Far` have no words: they exist so that
/// violations of `touching`/`inside` and of `near` can be described and rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    LeftOf,
    RightOf,
    Above,
    Below,
    Near,
    NextTo,
    InFrontOf,
    Behind,
    HiddenBy,
    Inside,
    Around,
    Touching,
    Apart,
    Far,
}

/// Which family of benchmark a relation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelationFamily {
    Spatial2d,
    Spatial3d,
    NonSpatial,
}

impl Relation {
    /// Relations that have words.
    pub const SPOKEN: &'static [Relation] = &[
        Relation::LeftOf,
        Relation::RightOf,
        Relation::Above,
        Relation::Below,
        Relation::Near,
        Relation::NextTo,
        Relation::InFrontOf,
        Relation::Behind,
        Relation::HiddenBy,
        Relation::Inside,
        Relation::Around,
        Relation::Touching,
    ];

    /// The words of the relation (empty for the internal ones).
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Relation::LeftOf => &["on", "the", "left", "of"],
            Relation::RightOf => &["on", "the", "right", "of"],
            Relation::Above => &["on", "the", "top", "of"],
            Relation::Below => &["on", "the", "bottom", "of"],
            Relation::Near => &["near"],
            Relation::NextTo => &["next", "to"],
            Relation::InFrontOf => &["in", "front", "of"],
            Relation::Behind => &["behind"],
            Relation::HiddenBy => &["hidden", "by"],
            Relation::Inside => &["inside"],
            Relation::Around => &["around"],
            Relation::Touching => &["touching"],
            Relation::Apart | Relation::Far => &[],
        }
    }

    /// The benchmark family.
    pub fn family(self) -> RelationFamily {
        match self {
            Relation::LeftOf
            | Relation::RightOf
            | Relation::Above
            | Relation::Below
            | Relation::Near
            | Relation::NextTo
            | Relation::Far => RelationFamily::Spatial2d,
            Relation::InFrontOf | Relation::Behind | Relation::HiddenBy => {
                RelationFamily::Spatial3d
            }
            Relation::Inside | Relation::Around | Relation::Touching | Relation::Apart => {
                RelationFamily::NonSpatial
            }
        }
    }

    /// A relation that contradicts this one (used to render violations).
    pub fn flipped(self) -> Relation {
        match self {
            Relation::LeftOf => Relation::RightOf,
            Relation::RightOf => Relation::LeftOf,
            Relation::Above => Relation::Below,
            Relation::Below => Relation::Above,
            Relation::Near | Relation::NextTo => Relation::Far,
            Relation::InFrontOf => Relation::Behind,
            Relation::Behind | Relation::HiddenBy => Relation::InFrontOf,
            Relation::Inside | Relation::Around | Relation::Touching => Relation::Apart,
            Relation::Apart => Relation::Touching,
            Relation::Far => Relation::Near,
        }
    }

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Relation::LeftOf => "left of",
            Relation::RightOf => "right of",
            Relation::Above => "above",
            Relation::Below => "below",
            Relation::Near => "near",
            Relation::NextTo => "next to",
            Relation::InFrontOf => "in front of",
            Relation::Behind => "behind",
            Relation::HiddenBy => "hidden by",
            Relation::Inside => "inside",
            Relation::Around => "around",
            Relation::Touching => "touching",
            Relation::Apart => "apart from",
            Relation::Far => "far from",
        }
    }
}

/// Things whose colour everyone knows (world-knowledge prompts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Sky,
    Grass,
    Banana,
    Tomato,
    Carrot,
    Flamingo,
    Grape,
}

impl Entity {
    pub const ALL: &'static [Entity] = &[
        Entity::Sky,
        Entity::Grass,
        Entity::Banana,
        Entity::Tomato,
        Entity::Carrot,
        Entity::Flamingo,
        Entity::Grape,
    ];

    /// The words naming it, with its article.
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Entity::Sky => &["the", "sky"],
            Entity::Grass => &["grass"],
            Entity::Banana => &["a", "banana"],
            Entity::Tomato => &["a", "tomato"],
            Entity::Carrot => &["a", "carrot"],
            Entity::Flamingo => &["a", "flamingo"],
            Entity::Grape => &["a", "grape"],
        }
    }

    /// Its colour.
    pub fn colour(self) -> Colour {
        match self {
            Entity::Sky => Colour::Blue,
            Entity::Grass => Colour::Green,
            Entity::Banana => Colour::Yellow,
            Entity::Tomato => Colour::Red,
            Entity::Carrot => Colour::Orange,
            Entity::Flamingo => Colour::Pink,
            Entity::Grape => Colour::Purple,
        }
    }
}

/// Named composites: several objects in a conventional arrangement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Composite {
    /// Red over yellow over green circles.
    TrafficLight,
    /// A red triangle (roof) above a yellow square (wall).
    House,
    /// A green triangle above an orange square (trunk).
    PineTree,
    /// A small red circle inside a blue circle.
    Target,
}

impl Composite {
    pub const ALL: &'static [Composite] = &[
        Composite::TrafficLight,
        Composite::House,
        Composite::PineTree,
        Composite::Target,
    ];

    /// The words after the article.
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Composite::TrafficLight => &["traffic", "light"],
            Composite::House => &["house"],
            Composite::PineTree => &["pine", "tree"],
            Composite::Target => &["target"],
        }
    }

    /// Its parts (shape and colour) and the relations between parts.
    pub fn parts(self) -> (Vec<ObjectSpec>, Vec<(usize, Relation, usize)>) {
        let p = |shape, colour| ObjectSpec {
            shape: Some(shape),
            colour: Some(colour),
            texture: None,
            size: None,
        };
        match self {
            Composite::TrafficLight => (
                vec![
                    p(Shape::Circle, Colour::Red),
                    p(Shape::Circle, Colour::Yellow),
                    p(Shape::Circle, Colour::Green),
                ],
                vec![(0, Relation::Above, 1), (1, Relation::Above, 2)],
            ),
            Composite::House => (
                vec![
                    p(Shape::Triangle, Colour::Red),
                    p(Shape::Square, Colour::Yellow),
                ],
                vec![(0, Relation::Above, 1)],
            ),
            Composite::PineTree => (
                vec![
                    p(Shape::Triangle, Colour::Green),
                    p(Shape::Square, Colour::Orange),
                ],
                vec![(0, Relation::Above, 1)],
            ),
            Composite::Target => (
                vec![
                    p(Shape::Circle, Colour::Red),
                    p(Shape::Circle, Colour::Blue),
                ],
                vec![(0, Relation::Inside, 1)],
            ),
        }
    }
}

/// How many objects a noun phrase asks for, and how it says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Det {
    /// "a" / "an": one object, not a counting constraint.
    A,
    /// "one" .. "six": an exact count.
    Num(u8),
    /// "as many ... as a <shape> has corners".
    AsManyAsCorners(Shape),
    /// "<x> plus <y>".
    Plus(u8, u8),
    /// "<x> minus <y>".
    Minus(u8, u8),
}

impl Det {
    /// The number of objects asked for.
    pub fn count(self) -> u8 {
        match self {
            Det::A => 1,
            Det::Num(n) => n,
            Det::AsManyAsCorners(s) => s.corners(),
            Det::Plus(a, b) => a + b,
            Det::Minus(a, b) => a.saturating_sub(b),
        }
    }

    /// Whether the phrase is an exact-count constraint.
    pub fn is_counted(self) -> bool {
        !matches!(self, Det::A)
    }

    fn is_arithmetic(self) -> bool {
        matches!(
            self,
            Det::AsManyAsCorners(_) | Det::Plus(..) | Det::Minus(..)
        )
    }
}

/// The head noun of a phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Noun {
    /// A shape word.
    Shape(Shape),
    /// "shape": any shape.
    AnyShape,
    /// A geometric definition of a shape ("shape with three corners", "plus sign").
    Definition(Shape),
}

impl Noun {
    /// The shape it asks for, if any.
    pub fn shape(self) -> Option<Shape> {
        match self {
            Noun::Shape(s) | Noun::Definition(s) => Some(s),
            Noun::AnyShape => None,
        }
    }
}

/// A noun phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Np {
    pub det: Det,
    pub size: Option<Size>,
    pub texture: Option<Texture>,
    pub colour: Option<Colour>,
    pub noun: Noun,
    /// "the colour of <entity>" (world knowledge); excludes `colour`.
    pub colour_of: Option<Entity>,
}

impl Np {
    /// "a <noun>" with no attributes.
    pub fn a(noun: Noun) -> Self {
        Np {
            det: Det::A,
            size: None,
            texture: None,
            colour: None,
            noun,
            colour_of: None,
        }
    }

    /// The attributes it asks for.
    pub fn spec(&self) -> ObjectSpec {
        ObjectSpec {
            shape: self.noun.shape(),
            colour: self.colour.or(self.colour_of.map(Entity::colour)),
            texture: self.texture,
            size: self.size,
        }
    }
}

/// One side of a clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    Np(Np),
    Composite(Composite),
}

/// A clause: an item, optionally related to a second one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clause {
    pub head: Item,
    pub rel: Option<(Relation, Np)>,
}

/// The syntax of a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ast {
    pub clauses: Vec<Clause>,
}

/// Attributes an object must have; `None` means any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ObjectSpec {
    pub shape: Option<Shape>,
    pub colour: Option<Colour>,
    pub texture: Option<Texture>,
    pub size: Option<Size>,
}

impl ObjectSpec {
    /// Whether an object with these attributes satisfies the spec.
    pub fn matches(&self, shape: Shape, colour: Colour, texture: Texture, size: Size) -> bool {
        self.shape.is_none_or(|s| s == shape)
            && self.colour.is_none_or(|c| c == colour)
            && self.texture.is_none_or(|t| t == texture)
            && self.size.is_none_or(|z| z == size)
    }

    /// A short description ("small striped red circle", "object" when nothing is asked).
    pub fn describe(&self) -> String {
        let mut w: Vec<&str> = Vec::new();
        if let Some(z) = self.size {
            w.push(z.word());
        }
        if let Some(t) = self.texture {
            w.push(t.word());
        }
        if let Some(c) = self.colour {
            w.push(c.word());
        }
        w.push(self.shape.map_or("shape", Shape::word));
        w.join(" ")
    }
}

/// One noun phrase of the meaning: what to draw and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phrase {
    pub spec: ObjectSpec,
    /// Number of objects.
    pub count: u8,
    /// Whether the count is itself a constraint ("three circles") rather than "a circle".
    pub counted: bool,
}

/// A relation between phrase `a` and phrase `b` (indices into [`Meaning::phrases`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationFact {
    pub a: usize,
    pub rel: Relation,
    pub b: usize,
}

/// The explicit meaning of a prompt: everything a correct image must satisfy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Meaning {
    pub phrases: Vec<Phrase>,
    pub relations: Vec<RelationFact>,
}

/// A typed constraint of a meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Constraint {
    /// An object matching phrase `phrase` is present (distinct from those of other phrases).
    Present { phrase: usize },
    /// Exactly `n` objects match phrase `phrase`.
    Count { phrase: usize, n: u8 },
    /// The relation holds between an object of phrase `a` and one of phrase `b`.
    Relation { a: usize, rel: Relation, b: usize },
}

impl Meaning {
    /// Total number of objects a correct scene holds.
    pub fn object_count(&self) -> usize {
        self.phrases.iter().map(|p| usize::from(p.count)).sum()
    }

    /// The constraints, phrases first, then relations.
    pub fn constraints(&self) -> Vec<Constraint> {
        let mut v: Vec<Constraint> = self
            .phrases
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if p.counted {
                    Constraint::Count {
                        phrase: i,
                        n: p.count,
                    }
                } else {
                    Constraint::Present { phrase: i }
                }
            })
            .collect();
        v.extend(self.relations.iter().map(|r| Constraint::Relation {
            a: r.a,
            rel: r.rel,
            b: r.b,
        }));
        v
    }

    /// A one-line description of a constraint, for per-constraint reports.
    pub fn describe(&self, c: &Constraint) -> String {
        match *c {
            Constraint::Present { phrase } => {
                format!("present: {}", self.phrases[phrase].spec.describe())
            }
            Constraint::Count { phrase, n } => {
                format!(
                    "count: exactly {n} {}",
                    self.phrases[phrase].spec.describe()
                )
            }
            Constraint::Relation { a, rel, b } => format!(
                "relation: {} {} {}",
                self.phrases[a].spec.describe(),
                rel.name(),
                self.phrases[b].spec.describe()
            ),
        }
    }
}

/// A prompt: its category, its text and its meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub category: Category,
    pub text: String,
    pub ast: Ast,
    pub meaning: Meaning,
}

impl Prompt {
    /// A prompt from its syntax, with the category the grammar implies.
    pub fn from_ast(ast: Ast) -> Prompt {
        let text = ast.to_text();
        let meaning = ast.meaning();
        let category = ast.category();
        Prompt {
            category,
            text,
            ast,
            meaning,
        }
    }

    /// Parses a prompt's text; the category is inferred from its syntax.
    pub fn parse(text: &str) -> Result<Prompt> {
        let ast = parse(text)?;
        Ok(Prompt::from_ast(ast))
    }

    /// Parses a prompt's text and labels it with a given category (from a split file).
    pub fn parse_as(text: &str, category: Category) -> Result<Prompt> {
        let mut p = Prompt::parse(text)?;
        p.category = category;
        Ok(p)
    }
}

const NUMBERS: [&str; 7] = ["zero", "one", "two", "three", "four", "five", "six"];

fn number_word(n: u8) -> &'static str {
    NUMBERS[usize::from(n).min(6)]
}

fn number_of(w: &str) -> Option<u8> {
    NUMBERS.iter().position(|x| *x == w).map(|i| i as u8)
}

fn article_for(next: &str) -> &'static str {
    if next.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

impl Ast {
    /// The prompt text.
    pub fn to_text(&self) -> String {
        let parts: Vec<String> = self
            .clauses
            .iter()
            .map(|c| {
                let mut w = item_words(&c.head);
                if let Some((rel, np)) = &c.rel {
                    w.extend(rel.words().iter().map(|s| s.to_string()));
                    w.extend(np_words(np));
                }
                w.join(" ")
            })
            .collect();
        parts.join(" and ")
    }

    /// The explicit meaning.
    pub fn meaning(&self) -> Meaning {
        let mut m = Meaning::default();
        let add_np = |m: &mut Meaning, np: &Np| {
            m.phrases.push(Phrase {
                spec: np.spec(),
                count: np.det.count(),
                counted: np.det.is_counted(),
            });
            m.phrases.len() - 1
        };
        for c in &self.clauses {
            match &c.head {
                Item::Composite(comp) => {
                    let base = m.phrases.len();
                    let (parts, rels) = comp.parts();
                    for spec in parts {
                        m.phrases.push(Phrase {
                            spec,
                            count: 1,
                            counted: false,
                        });
                    }
                    for (a, rel, b) in rels {
                        m.relations.push(RelationFact {
                            a: base + a,
                            rel,
                            b: base + b,
                        });
                    }
                }
                Item::Np(np) => {
                    let a = add_np(&mut m, np);
                    if let Some((rel, other)) = &c.rel {
                        let b = add_np(&mut m, other);
                        m.relations.push(RelationFact { a, rel: *rel, b });
                    }
                }
            }
        }
        m
    }

    fn nps(&self) -> impl Iterator<Item = &Np> {
        self.clauses.iter().flat_map(|c| {
            let head = match &c.head {
                Item::Np(np) => Some(np),
                Item::Composite(_) => None,
            };
            head.into_iter().chain(c.rel.as_ref().map(|(_, np)| np))
        })
    }

    /// The category the syntax implies. Generators produce prompts whose category this
    /// recovers exactly (a test checks it).
    pub fn category(&self) -> Category {
        if self.nps().any(|n| n.det.is_arithmetic()) {
            return Category::Arithmetic;
        }
        if self.nps().any(|n| matches!(n.noun, Noun::Definition(_))) {
            return Category::Geometry;
        }
        if self.nps().any(|n| n.colour_of.is_some()) {
            return Category::Knowledge;
        }
        if self
            .clauses
            .iter()
            .any(|c| matches!(c.head, Item::Composite(_)))
        {
            return Category::Composite;
        }
        let rels: Vec<Relation> = self
            .clauses
            .iter()
            .filter_map(|c| c.rel.map(|(r, _)| r))
            .collect();
        let counted = self.nps().filter(|n| n.det.is_counted()).count();
        let total = self.nps().count();
        if !rels.is_empty() {
            if self.clauses.len() > 1 || counted > 0 {
                return Category::Complex;
            }
            return match rels[0].family() {
                RelationFamily::Spatial2d => Category::Spatial2d,
                RelationFamily::Spatial3d => Category::Spatial3d,
                RelationFamily::NonSpatial => Category::NonSpatial,
            };
        }
        if counted > 0 {
            return if counted == total {
                Category::Numeracy
            } else {
                Category::Complex
            };
        }
        if self.nps().any(|n| n.texture.is_some()) {
            Category::Texture
        } else if self.nps().any(|n| n.size.is_some()) {
            Category::Shape
        } else {
            Category::Colour
        }
    }
}

fn item_words(item: &Item) -> Vec<String> {
    match item {
        Item::Np(np) => np_words(np),
        Item::Composite(c) => {
            let mut w = vec![article_for(c.words()[0]).to_string()];
            w.extend(c.words().iter().map(|s| s.to_string()));
            w
        }
    }
}

fn np_words(np: &Np) -> Vec<String> {
    let mut adj: Vec<String> = Vec::new();
    if let Some(z) = np.size {
        adj.push(z.word().into());
    }
    if let Some(t) = np.texture {
        adj.push(t.word().into());
    }
    if let Some(c) = np.colour {
        adj.push(c.word().into());
    }
    let plural = match np.det {
        Det::A => false,
        Det::Num(n) => n != 1,
        _ => true,
    };
    let noun: Vec<String> = match np.noun {
        Noun::Shape(s) => vec![if plural { s.plural() } else { s.word() }.into()],
        Noun::AnyShape => vec![if plural { "shapes" } else { "shape" }.into()],
        Noun::Definition(s) => definition_words(s, plural)
            .iter()
            .map(|w| w.to_string())
            .collect(),
    };
    let mut body = adj;
    body.extend(noun);
    let mut w: Vec<String> = match np.det {
        Det::A => vec![article_for(&body[0]).into()],
        Det::Num(n) => vec![number_word(n).into()],
        Det::AsManyAsCorners(_) => vec!["as".into(), "many".into()],
        Det::Plus(a, b) => vec![number_word(a).into(), "plus".into(), number_word(b).into()],
        Det::Minus(a, b) => vec![number_word(a).into(), "minus".into(), number_word(b).into()],
    };
    w.extend(body);
    if let Det::AsManyAsCorners(s) = np.det {
        w.extend(["as".into(), article_for(s.word()).into(), s.word().into()]);
        w.extend(["has".into(), "corners".into()]);
    }
    if let Some(e) = np.colour_of {
        w.extend(["the".into(), "colour".into(), "of".into()]);
        w.extend(e.words().iter().map(|s| s.to_string()));
    }
    w
}

fn definition_words(s: Shape, plural: bool) -> &'static [&'static str] {
    match (s, plural) {
        (Shape::Circle, false) => &["shape", "with", "no", "corners"],
        (Shape::Circle, true) => &["shapes", "with", "no", "corners"],
        (Shape::Triangle, false) => &["shape", "with", "three", "corners"],
        (Shape::Triangle, true) => &["shapes", "with", "three", "corners"],
        (Shape::Square, false) => &[
            "shape", "with", "four", "corners", "and", "a", "flat", "top",
        ],
        (Shape::Square, true) => &[
            "shapes", "with", "four", "corners", "and", "a", "flat", "top",
        ],
        (Shape::Diamond, false) => &[
            "shape", "with", "four", "corners", "and", "a", "pointed", "top",
        ],
        (Shape::Diamond, true) => &[
            "shapes", "with", "four", "corners", "and", "a", "pointed", "top",
        ],
        (Shape::Cross, false) => &["plus", "sign"],
        (Shape::Cross, true) => &["plus", "signs"],
    }
}

/// Every word the parser accepts.
pub fn vocabulary() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = VOCABULARY.to_vec();
    v.extend(Shape::ALL.iter().flat_map(|s| [s.word(), s.plural()]));
    v.extend(Colour::ALL.iter().map(|c| c.word()));
    v.extend(Texture::ALL.iter().map(|t| t.word()));
    v.extend(Size::ALL.iter().map(|z| z.word()));
    v.extend(NUMBERS.iter().skip(1));
    v.extend(
        Relation::SPOKEN
            .iter()
            .flat_map(|r| r.words().iter().copied()),
    );
    v.extend(Entity::ALL.iter().flat_map(|e| e.words().iter().copied()));
    v.extend(
        Composite::ALL
            .iter()
            .flat_map(|c| c.words().iter().copied()),
    );
    v.sort_unstable();
    v.dedup();
    v
}

/// Function words of the grammar (the rest of the vocabulary comes from the world's enums).
pub const VOCABULARY: &[&str] = &[
    "a", "an", "and", "as", "many", "has", "corners", "plus", "minus", "shape", "shapes", "with",
    "no", "flat", "pointed", "top", "sign", "signs", "the", "colour", "color", "of",
];

/// Splits a prompt into lowercase words; punctuation is dropped.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| ".,;:!?\"'".contains(c))
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Parses prompt text into its syntax. Unknown words are reported by name.
pub fn parse(text: &str) -> Result<Ast> {
    let toks = tokenize(text);
    let vocab = vocabulary();
    if let Some(w) = toks
        .iter()
        .find(|w| vocab.binary_search(&w.as_str()).is_err())
    {
        return Err(Error::UnknownWord {
            word: w.clone(),
            prompt: text.to_string(),
        });
    }
    if toks.is_empty() {
        return Err(Error::Parse {
            prompt: text.to_string(),
            msg: "empty prompt".into(),
        });
    }
    let mut p = Parser {
        toks: &toks,
        pos: 0,
        text,
    };
    let mut clauses = vec![p.clause()?];
    while p.pos < toks.len() {
        p.expect("and")?;
        clauses.push(p.clause()?);
    }
    Ok(Ast { clauses })
}

struct Parser<'a> {
    toks: &'a [String],
    pos: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn err<T>(&self, msg: impl Into<String>) -> Result<T> {
        let at = self
            .toks
            .get(self.pos)
            .map_or("the end".to_string(), |w| format!("'{w}'"));
        Err(Error::Parse {
            prompt: self.text.to_string(),
            msg: format!("{} at {at}", msg.into()),
        })
    }

    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(String::as_str)
    }

    fn peek_at(&self, k: usize) -> Option<&str> {
        self.toks.get(self.pos + k).map(String::as_str)
    }

    fn eat(&mut self, w: &str) -> bool {
        if self.peek() == Some(w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_seq(&mut self, ws: &[&str]) -> bool {
        let ok = ws
            .iter()
            .enumerate()
            .all(|(k, w)| self.peek_at(k) == Some(*w));
        if ok {
            self.pos += ws.len();
        }
        ok
    }

    fn expect(&mut self, w: &str) -> Result<()> {
        if self.eat(w) {
            Ok(())
        } else {
            self.err(format!("expected '{w}'"))
        }
    }

    fn clause(&mut self) -> Result<Clause> {
        // Composite?
        let save = self.pos;
        if self.eat("a") {
            for c in Composite::ALL {
                if self.eat_seq(c.words()) {
                    return Ok(Clause {
                        head: Item::Composite(*c),
                        rel: None,
                    });
                }
            }
        }
        self.pos = save;
        let head = self.np()?;
        let mut rel = None;
        for r in Relation::SPOKEN {
            if self.eat_seq(r.words()) {
                rel = Some((*r, self.np()?));
                break;
            }
        }
        Ok(Clause {
            head: Item::Np(head),
            rel,
        })
    }

    fn number(&mut self) -> Option<u8> {
        let n = self.peek().and_then(number_of)?;
        self.pos += 1;
        Some(n)
    }

    fn np(&mut self) -> Result<Np> {
        // Determiner.
        let det = if self.eat("a") || self.eat("an") {
            Det::A
        } else if self.eat_seq(&["as", "many"]) {
            Det::AsManyAsCorners(Shape::Circle) // corner shape filled in below
        } else if let Some(n) = self.number() {
            if self.eat("plus") {
                match self.number() {
                    Some(m) => Det::Plus(n, m),
                    None => return self.err("expected a number after 'plus'"),
                }
            } else if self.eat("minus") {
                match self.number() {
                    Some(m) if m < n => Det::Minus(n, m),
                    Some(_) => return self.err("a difference must be at least one"),
                    None => return self.err("expected a number after 'minus'"),
                }
            } else {
                Det::Num(n)
            }
        } else {
            return self.err("expected a noun phrase ('a', 'an', a number or 'as many')");
        };
        let plural = match det {
            Det::A => false,
            Det::Num(n) => n != 1,
            _ => true,
        };
        // Adjectives in fixed order: size, texture, colour.
        let mut np = Np::a(Noun::AnyShape);
        np.det = det;
        if let Some(z) = self.peek().and_then(Size::from_word) {
            np.size = Some(z);
            self.pos += 1;
        }
        if let Some(t) = self.peek().and_then(Texture::from_word) {
            np.texture = Some(t);
            self.pos += 1;
        }
        if let Some(c) = self.peek().and_then(Colour::from_word) {
            np.colour = Some(c);
            self.pos += 1;
        }
        // Noun.
        np.noun = self.noun(plural)?;
        if let Det::AsManyAsCorners(_) = det {
            self.expect("as")?;
            if !(self.eat("a") || self.eat("an")) {
                return self.err("expected 'a' after 'as many ... as'");
            }
            let s = match self.peek().and_then(Shape::from_word) {
                Some(s) if s.corners() > 0 && s.corners() <= 6 => s,
                _ => return self.err("expected a shape with one to six corners"),
            };
            self.pos += 1;
            if !self.eat_seq(&["has", "corners"]) {
                return self.err("expected 'has corners'");
            }
            np.det = Det::AsManyAsCorners(s);
        }
        if self.eat_seq(&["the", "colour", "of"]) || self.eat_seq(&["the", "color", "of"]) {
            if np.colour.is_some() {
                return self.err("a phrase cannot have both a colour and 'the colour of'");
            }
            let e = Entity::ALL
                .iter()
                .copied()
                .find(|e| self.eat_seq(e.words()));
            match e {
                Some(e) => np.colour_of = Some(e),
                None => return self.err("expected a thing with a known colour"),
            }
        }
        if np.det.count() == 0 || np.det.count() > 6 {
            return self.err(format!(
                "a phrase must ask for 1 to 6 objects, not {}",
                np.det.count()
            ));
        }
        Ok(np)
    }

    fn noun(&mut self, plural: bool) -> Result<Noun> {
        for s in Shape::ALL {
            let defn = definition_words(*s, plural);
            if self.eat_seq(defn) {
                return Ok(Noun::Definition(*s));
            }
        }
        let w = self.peek().unwrap_or("");
        let found = if plural {
            Shape::from_plural(w)
                .map(Noun::Shape)
                .or((w == "shapes").then_some(Noun::AnyShape))
        } else {
            Shape::from_word(w)
                .map(Noun::Shape)
                .or((w == "shape").then_some(Noun::AnyShape))
        };
        match found {
            Some(n) => {
                self.pos += 1;
                Ok(n)
            }
            None if plural => self.err("expected a plural noun (circles, squares, ...)"),
            None => self.err("expected a noun (circle, square, triangle, diamond, cross, shape)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_construct() {
        let p = Prompt::parse("a red circle on the left of a striped blue square").unwrap();
        assert_eq!(p.category, Category::Spatial2d);
        assert_eq!(p.meaning.phrases.len(), 2);
        assert_eq!(p.meaning.relations[0].rel, Relation::LeftOf);
        assert_eq!(p.meaning.phrases[1].spec.texture, Some(Texture::Striped));

        let p = Prompt::parse("as many green squares as a triangle has corners").unwrap();
        assert_eq!(p.category, Category::Arithmetic);
        assert_eq!(p.meaning.phrases[0].count, 3);
        assert!(p.meaning.phrases[0].counted);

        let p = Prompt::parse("three minus one crosses").unwrap();
        assert_eq!(p.meaning.phrases[0].count, 2);

        let p = Prompt::parse("a large shape the colour of the sky").unwrap();
        assert_eq!(p.category, Category::Knowledge);
        assert_eq!(p.meaning.phrases[0].spec.colour, Some(Colour::Blue));
        assert_eq!(p.meaning.phrases[0].spec.shape, None);

        let p = Prompt::parse("a pink shape with four corners and a pointed top").unwrap();
        assert_eq!(p.category, Category::Geometry);
        assert_eq!(p.meaning.phrases[0].spec.shape, Some(Shape::Diamond));

        let p = Prompt::parse("a traffic light and a cyan cross").unwrap();
        assert_eq!(p.category, Category::Composite);
        assert_eq!(p.meaning.phrases.len(), 4);
        assert_eq!(p.meaning.relations.len(), 2);

        let p = Prompt::parse("two red circles and one square").unwrap();
        assert_eq!(p.category, Category::Numeracy);
        assert_eq!(p.meaning.object_count(), 3);
    }

    #[test]
    fn unknown_word_is_named() {
        let e = Prompt::parse("a red unicorn next to a square").unwrap_err();
        assert!(e.to_string().contains("'unicorn'"), "{e}");
        let e = Prompt::parse("a red circle next").unwrap_err();
        assert!(matches!(e, Error::Parse { .. }), "{e}");
        assert!(Prompt::parse("").is_err());
        assert!(Prompt::parse("three minus four circles").is_err());
    }

    #[test]
    fn articles_follow_the_next_word() {
        let p = Prompt::parse("an orange circle and a large outlined square").unwrap();
        assert_eq!(p.text, "an orange circle and a large outlined square");
        assert_eq!(
            Prompt::parse("a outlined circle").unwrap().text,
            "an outlined circle"
        );
    }
}
