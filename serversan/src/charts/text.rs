//! Text on charts, set with the embedded DejaVu Sans (2.37, unmodified; its
//! licence is `assets/fonts/LICENSE-DejaVu.txt`). Charts never read system
//! fonts, so they look the same on every host and need no fontconfig.
//!
//! Glyphs are placed here rather than through plotters' `ab_glyph` text
//! path, which drops each glyph's side bearing and so spaces letters
//! unevenly ("hou rs"). Text is drawn last, straight onto the pixels.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};
use plotters::style::RGBColor;

use super::error::ChartError;

static REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// DejaVu Sans capital height, as a share of the em: vertical centring uses
/// it so digits and capitals sit visually centred on a tick.
const CAP_HEIGHT: f32 = 0.729;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Weight {
    Regular,
    Bold,
}

/// Where the anchor point sits on the text: its start, middle or end
/// (horizontally), or its top, capital middle or bottom (vertically).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Start,
    Middle,
    End,
}

/// One line of text to draw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Label {
    pub text: String,
    /// Anchor, in image pixels.
    pub at: (i32, i32),
    /// Em size in pixels.
    pub size: f32,
    pub colour: RGBColor,
    pub weight: Weight,
    pub across: Align,
    pub down: Align,
    /// Turned a quarter left, reading upwards (value axis titles).
    pub upward: bool,
}

impl Label {
    /// Regular, upright text anchored as given.
    pub fn new(text: impl Into<String>, at: (i32, i32), size: f32, colour: RGBColor) -> Self {
        Self {
            text: text.into(),
            at,
            size,
            colour,
            weight: Weight::Regular,
            across: Align::Start,
            down: Align::Start,
            upward: false,
        }
    }

    pub fn anchored(mut self, across: Align, down: Align) -> Self {
        self.across = across;
        self.down = down;
        self
    }

    pub fn bold(mut self) -> Self {
        self.weight = Weight::Bold;
        self
    }

    pub fn upward(mut self) -> Self {
        self.upward = true;
        self
    }
}

/// The two embedded faces, parsed once per process.
pub(crate) struct Typesetter {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

impl Typesetter {
    pub fn get() -> Result<&'static Typesetter, ChartError> {
        static FACES: OnceLock<Option<Typesetter>> = OnceLock::new();
        FACES
            .get_or_init(|| {
                Some(Typesetter {
                    regular: FontRef::try_from_slice(REGULAR).ok()?,
                    bold: FontRef::try_from_slice(BOLD).ok()?,
                })
            })
            .as_ref()
            .ok_or(ChartError::Font)
    }

    fn face(&self, weight: Weight) -> &FontRef<'static> {
        match weight {
            Weight::Regular => &self.regular,
            Weight::Bold => &self.bold,
        }
    }

    /// The pixel scale whose em is `size` pixels (ab_glyph scales by
    /// ascent-to-descent height, which is larger than the em).
    fn scale(face: &FontRef<'static>, size: f32) -> PxScale {
        let units = face.units_per_em().unwrap_or(2048.0);
        PxScale::from(size * face.height_unscaled() / units)
    }

    /// Advance width of `text` in pixels, kerning included.
    pub fn width(&self, text: &str, size: f32, weight: Weight) -> f32 {
        let face = self.face(weight);
        let font = face.as_scaled(Self::scale(face, size));
        layout(&font, text).1
    }

    /// Draws a label onto the canvas, blending its anti-aliased edges.
    pub fn draw(&self, canvas: &mut Canvas<'_>, label: &Label) {
        let face = self.face(label.weight);
        let scale = Self::scale(face, label.size);
        let font = face.as_scaled(scale);
        let (glyphs, width) = layout(&font, &label.text);
        let start = match label.across {
            Align::Start => 0.0,
            Align::Middle => -width / 2.0,
            Align::End => -width,
        };
        let baseline = match label.down {
            Align::Start => font.ascent(),
            Align::Middle => label.size * CAP_HEIGHT / 2.0,
            Align::End => font.descent(),
        };
        for (id, x) in glyphs {
            let glyph = id.with_scale_and_position(scale, point(start + x, baseline));
            let Some(outline) = face.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let dx = bounds.min.x as i32 + gx as i32;
                let dy = bounds.min.y as i32 + gy as i32;
                let (x, y) = if label.upward {
                    (label.at.0 + dy, label.at.1 - dx)
                } else {
                    (label.at.0 + dx, label.at.1 + dy)
                };
                canvas.blend(x, y, label.colour, coverage);
            });
        }
    }
}

/// Glyphs with their pen positions, and the total advance.
fn layout<F: Font>(font: &ab_glyph::PxScaleFont<&F>, text: &str) -> (Vec<(GlyphId, f32)>, f32) {
    let mut caret = 0.0;
    let mut previous: Option<GlyphId> = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(previous) = previous {
            caret += font.kern(previous, id);
        }
        glyphs.push((id, caret));
        caret += font.h_advance(id);
        previous = Some(id);
    }
    (glyphs, caret)
}

/// An 8-bit RGB pixel buffer, row by row, as plotters' bitmap backend
/// leaves it.
pub(crate) struct Canvas<'a> {
    pixels: &'a mut [u8],
    width: u32,
    height: u32,
}

impl<'a> Canvas<'a> {
    pub fn new(pixels: &'a mut [u8], width: u32, height: u32) -> Self {
        debug_assert_eq!(pixels.len(), width as usize * height as usize * 3);
        Self {
            pixels,
            width,
            height,
        }
    }

    /// Mixes `colour` into one pixel by `alpha` (0–1); off-canvas is ignored.
    fn blend(&mut self, x: i32, y: i32, colour: RGBColor, alpha: f32) {
        let (Ok(x), Ok(y)) = (u32::try_from(x), u32::try_from(y)) else {
            return;
        };
        if x >= self.width || y >= self.height {
            return;
        }
        let alpha = alpha.clamp(0.0, 1.0);
        let at = (y as usize * self.width as usize + x as usize) * 3;
        for (channel, value) in self.pixels[at..at + 3]
            .iter_mut()
            .zip([colour.0, colour.1, colour.2])
        {
            let mixed = f32::from(*channel) * (1.0 - alpha) + f32::from(value) * alpha;
            *channel = mixed.round() as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLACK: RGBColor = RGBColor(0, 0, 0);

    fn inked(pixels: &[u8], width: u32) -> Vec<(u32, u32)> {
        pixels
            .chunks(3)
            .enumerate()
            .filter(|(_, p)| p[0] < 128)
            .map(|(i, _)| (i as u32 % width, i as u32 / width))
            .collect()
    }

    #[test]
    fn text_lands_where_it_is_anchored() {
        let set = Typesetter::get().unwrap();
        let (w, h) = (200u32, 100u32);
        let mut pixels = vec![255u8; (w * h * 3) as usize];
        let label = Label::new("Hi", (100, 50), 20.0, BLACK).anchored(Align::End, Align::Middle);
        set.draw(&mut Canvas::new(&mut pixels, w, h), &label);
        let ink = inked(&pixels, w);
        assert!(!ink.is_empty());
        let max_x = ink.iter().map(|p| p.0).max().unwrap();
        let min_y = ink.iter().map(|p| p.1).min().unwrap();
        let max_y = ink.iter().map(|p| p.1).max().unwrap();
        assert!((96..=100).contains(&max_x), "{max_x}");
        // Capitals centred on y = 50, about 14.6 px tall.
        assert!(
            (42..=44).contains(&min_y) && (56..=58).contains(&max_y),
            "{min_y}..{max_y}"
        );
    }

    #[test]
    fn upward_text_turns_a_quarter_left() {
        let set = Typesetter::get().unwrap();
        let (w, h) = (100u32, 200u32);
        let mut pixels = vec![255u8; (w * h * 3) as usize];
        let label = Label::new("Load average", (10, 100), 20.0, BLACK)
            .anchored(Align::Middle, Align::Start)
            .upward();
        set.draw(&mut Canvas::new(&mut pixels, w, h), &label);
        let ink = inked(&pixels, w);
        let span_x =
            ink.iter().map(|p| p.0).max().unwrap() - ink.iter().map(|p| p.0).min().unwrap();
        let span_y =
            ink.iter().map(|p| p.1).max().unwrap() - ink.iter().map(|p| p.1).min().unwrap();
        assert!(span_y > 3 * span_x, "{span_x} x {span_y}");
        assert!(ink.iter().all(|p| p.0 >= 10));
    }

    #[test]
    fn width_counts_kerning_and_grows_with_size() {
        let set = Typesetter::get().unwrap();
        let small = set.width("web-1 · CPU", 20.0, Weight::Regular);
        assert!(small > 80.0 && small < 140.0, "{small}");
        assert!(set.width("web-1 · CPU", 30.0, Weight::Bold) > small * 1.5);
        assert_eq!(set.width("", 20.0, Weight::Regular), 0.0);
    }
}
