//! JPEG-LS decoding (ITU-T T.87 / ISO/IEC 14495-1), lossless and near-lossless, as DICOM
//! stores it (transfer syntaxes 1.2.840.10008.1.2.4.80 and .81).
//!
//! Pure Rust, written here so that the default build needs no C++ toolchain or CMake (CharLS
//! did). Covers what DICOM encoders write: 2–16 bit samples, 1–4 components, all three
//! interleave modes (none, line, sample), near-lossless `NEAR` up to the standard's bound,
//! and preset coding parameters (LSE id 1). Refused with a message naming the feature:
//! mapping tables, restart intervals, point transforms, subsampled components, and the HP
//! colour transforms of CharLS's private APP8 marker.
//!
//! Every count and index is checked: a hostile stream gives an error, never a panic or an
//! allocation beyond `rows × columns × components` that the caller already checked against
//! its limits. The decoded image must match the geometry the DICOM header declares.

/// A decoded frame: samples in pixel order (`(y × width + x) × components + c`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frame {
    pub precision: u8,
    pub samples: Vec<u16>,
}

/// The geometry the caller expects (from the DICOM header).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    pub rows: usize,
    pub cols: usize,
    pub components: usize,
}

type Result<T> = std::result::Result<T, String>;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOF55: u8 = 0xF7;
const LSE: u8 = 0xF8;
const SOS: u8 = 0xDA;
const DRI: u8 = 0xDD;
const DNL: u8 = 0xDC;
const APP8: u8 = 0xE8;

/// T.87 Table A.2: run-length order per `RUNindex`.
const J: [u32; 32] =
    [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/// Decodes one JPEG-LS codestream (SOI … EOI) into samples.
pub(crate) fn decode(data: &[u8], expect: Expect) -> Result<Frame> {
    if data.get(..2) != Some(&[0xFF, SOI]) {
        return Err("the stream does not start with an SOI marker".into());
    }
    let mut pos = 2;
    let mut header: Option<FrameHeader> = None;
    let mut presets = Presets::default();
    let mut samples: Vec<u16> = Vec::new();
    let mut decoded = [false; 4];
    while let Some((marker, at)) = next_marker(data, pos) {
        pos = at + 2;
        match marker {
            EOI => break,
            SOF55 => {
                if header.is_some() {
                    return Err("a second frame header (SOF55)".into());
                }
                let seg = segment(data, pos, "SOF55")?;
                let h = FrameHeader::parse(seg)?;
                if (h.rows, h.cols, h.components) != (expect.rows, expect.cols, expect.components) {
                    return Err(format!(
                        "the codestream is {} × {} with {} component(s), the DICOM header declares {} × {} with {}",
                        h.cols, h.rows, h.components, expect.cols, expect.rows, expect.components
                    ));
                }
                samples = vec![0; h.rows * h.cols * h.components];
                header = Some(h);
                pos += seg.len() + 2;
            }
            0xC0..=0xCF if marker != 0xC4 && marker != 0xC8 && marker != 0xCC => {
                return Err(format!("frame marker FF{marker:02X} is not JPEG-LS (SOF55 expected)"));
            }
            LSE => {
                let seg = segment(data, pos, "LSE")?;
                presets = Presets::parse(seg)?;
                pos += seg.len() + 2;
            }
            DRI => {
                let seg = segment(data, pos, "DRI")?;
                if seg.iter().any(|&b| b != 0) {
                    return Err("restart intervals (DRI) are not supported".into());
                }
                pos += seg.len() + 2;
            }
            DNL => return Err("a number of lines defined after the scan (DNL) is not supported".into()),
            SOS => {
                let h = header.as_ref().ok_or("a scan (SOS) before the frame header (SOF55)")?;
                let seg = segment(data, pos, "SOS")?;
                let scan = ScanHeader::parse(seg, h)?;
                for &c in &scan.components {
                    if decoded[c] {
                        return Err(format!("component {} is coded twice", c + 1));
                    }
                    decoded[c] = true;
                }
                pos += seg.len() + 2;
                let params = Params::new(h.precision, scan.near, &presets)?;
                let mut decoder = ScanDecoder::new(&data[pos..], params, h, &scan);
                decoder.run(&mut samples)?;
                // The entropy-coded data ends at the first marker: an FF followed by a byte
                // with its high bit set (inside the data, FF is followed by a stuffed 0 bit).
                pos = next_marker(data, pos).map_or(data.len(), |(_, at)| at);
            }
            0xE0..=0xEF | 0xFE => {
                let seg = segment(data, pos, "APPn/COM")?;
                if marker == APP8 && seg.starts_with(b"mrfx") && seg.get(4).is_some_and(|&t| t != 0) {
                    return Err(format!(
                        "CharLS colour transform HP{} (APP8 \"mrfx\") is not supported",
                        seg.get(4).copied().unwrap_or(0)
                    ));
                }
                pos += seg.len() + 2;
            }
            other => {
                let seg = segment(data, pos, "marker segment")
                    .map_err(|_| format!("unexpected marker FF{other:02X} at byte {at}"))?;
                pos += seg.len() + 2;
            }
        }
    }
    let h = header.ok_or("no frame header (SOF55)")?;
    if let Some(c) = (0..h.components).find(|&c| !decoded[c]) {
        return Err(format!("no scan for component {} (the stream is truncated)", c + 1));
    }
    Ok(Frame { precision: h.precision, samples })
}

/// The next marker at or after `pos`: `(code, offset of its FF)`. Fill bytes (FF FF) are skipped.
fn next_marker(data: &[u8], mut pos: usize) -> Option<(u8, usize)> {
    while pos + 1 < data.len() {
        if data[pos] == 0xFF && data[pos + 1] >= 0x80 && data[pos + 1] != 0xFF {
            return Some((data[pos + 1], pos));
        }
        pos += 1;
    }
    None
}

/// A marker segment's body (after its two length bytes).
fn segment<'a>(data: &'a [u8], pos: usize, what: &str) -> Result<&'a [u8]> {
    let len = data
        .get(pos..pos + 2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        .ok_or_else(|| format!("{what} segment cut off at byte {pos}"))?;
    if len < 2 {
        return Err(format!("{what} segment at byte {pos} declares length {len}"));
    }
    data.get(pos + 2..pos + len).ok_or_else(|| format!("{what} segment at byte {pos} runs past the end"))
}

fn be16(b: &[u8], at: usize) -> Result<usize> {
    b.get(at..at + 2).map(|v| usize::from(u16::from_be_bytes([v[0], v[1]]))).ok_or_else(|| "segment too short".into())
}

#[derive(Debug)]
struct FrameHeader {
    precision: u8,
    rows: usize,
    cols: usize,
    components: usize,
    ids: Vec<u8>,
}

impl FrameHeader {
    fn parse(seg: &[u8]) -> Result<Self> {
        let precision = *seg.first().ok_or("SOF55 is empty")?;
        let rows = be16(seg, 1)?;
        let cols = be16(seg, 3)?;
        let components = usize::from(*seg.get(5).ok_or("SOF55 too short")?);
        if !(2..=16).contains(&precision) {
            return Err(format!("sample precision {precision} (2–16 allowed)"));
        }
        if rows == 0 || cols == 0 {
            return Err(format!("image size {cols} × {rows}"));
        }
        if !(1..=4).contains(&components) {
            return Err(format!("{components} components (1–4 supported)"));
        }
        if seg.len() != 6 + 3 * components {
            return Err(format!("SOF55 has {} bytes for {components} components", seg.len()));
        }
        let mut ids = Vec::with_capacity(components);
        for c in 0..components {
            let (id, sampling) = (seg[6 + 3 * c], seg[7 + 3 * c]);
            if sampling != 0x11 {
                return Err(format!("component {} is subsampled ({:#04x}); not supported", c + 1, sampling));
            }
            ids.push(id);
        }
        Ok(Self { precision, rows, cols, components, ids })
    }
}

/// LSE id 1 (preset coding parameters); 0 means "the default".
#[derive(Debug, Default, Clone, Copy)]
struct Presets {
    maxval: i64,
    t1: i64,
    t2: i64,
    t3: i64,
    reset: i64,
}

impl Presets {
    fn parse(seg: &[u8]) -> Result<Self> {
        match seg.first() {
            Some(1) if seg.len() == 11 => Ok(Self {
                maxval: be16(seg, 1)? as i64,
                t1: be16(seg, 3)? as i64,
                t2: be16(seg, 5)? as i64,
                t3: be16(seg, 7)? as i64,
                reset: be16(seg, 9)? as i64,
            }),
            Some(1) => Err(format!("LSE preset parameters have {} bytes, 11 expected", seg.len())),
            Some(2 | 3) => Err("JPEG-LS mapping tables (LSE id 2/3) are not supported".into()),
            Some(id) => Err(format!("LSE id {id} is not supported")),
            None => Err("empty LSE segment".into()),
        }
    }
}

#[derive(Debug)]
struct ScanHeader {
    /// Indices into the frame's components, in coding order.
    components: Vec<usize>,
    near: i64,
    interleave: u8,
}

impl ScanHeader {
    fn parse(seg: &[u8], frame: &FrameHeader) -> Result<Self> {
        let ns = usize::from(*seg.first().ok_or("SOS is empty")?);
        if ns == 0 || ns > frame.components || seg.len() != 4 + 2 * ns {
            return Err(format!("SOS with {ns} components and {} bytes", seg.len()));
        }
        let mut components = Vec::with_capacity(ns);
        for i in 0..ns {
            let (id, table) = (seg[1 + 2 * i], seg[2 + 2 * i]);
            let c = frame
                .ids
                .iter()
                .position(|&f| f == id)
                .ok_or_else(|| format!("scan names component id {id}, which the frame does not have"))?;
            if table != 0 {
                return Err("JPEG-LS mapping tables are not supported".into());
            }
            components.push(c);
        }
        let near = i64::from(seg[1 + 2 * ns]);
        let interleave = seg[2 + 2 * ns];
        let point_transform = seg[3 + 2 * ns] & 0x0F;
        if point_transform != 0 {
            return Err(format!("point transform {point_transform} is not supported"));
        }
        match (interleave, ns) {
            (0, 1) | (1 | 2, _) => {}
            (0, _) => return Err(format!("interleave mode none with {ns} components in one scan")),
            (m, _) => return Err(format!("interleave mode {m} (0, 1 or 2 allowed)")),
        }
        Ok(Self { components, near, interleave: if ns == 1 { 0 } else { interleave } })
    }
}

/// Coding parameters of one scan (T.87 A.2, C.2.4.1.1).
#[derive(Debug, Clone, Copy)]
struct Params {
    maxval: i64,
    near: i64,
    range: i64,
    qbpp: u32,
    limit: u32,
    t1: i64,
    t2: i64,
    t3: i64,
    reset: i64,
}

fn bits_for(v: i64) -> u32 {
    // ceil(log2(v)) for v ≥ 1
    64 - (v - 1).max(0).leading_zeros()
}

impl Params {
    fn new(precision: u8, near: i64, p: &Presets) -> Result<Self> {
        let full = (1i64 << precision) - 1;
        let maxval = if p.maxval == 0 { full } else { p.maxval };
        if maxval < 1 || maxval > full {
            return Err(format!("MAXVAL {maxval} for {precision}-bit samples"));
        }
        if near > (maxval / 2).min(255) {
            return Err(format!("NEAR {near} exceeds the bound for MAXVAL {maxval}"));
        }
        let range = (maxval + 2 * near) / (2 * near + 1) + 1;
        let qbpp = bits_for(range);
        let bpp = bits_for(maxval + 1).max(2);
        let limit = 2 * (bpp + bpp.max(8));
        let clamp = |i: i64, j: i64| if i > maxval || i < j { j } else { i };
        // T.87 C.2.4.1.1.1 with BASIC_T1..3 = 3, 7, 21.
        let (d1, d2, d3) = if maxval >= 128 {
            let factor = (maxval.min(4095) + 128) / 256;
            let t1 = clamp(factor + 2 + 3 * near, near + 1);
            let t2 = clamp(factor * (7 - 3) + 3 + 5 * near, t1);
            (t1, t2, clamp(factor * (21 - 4) + 4 + 7 * near, t2))
        } else {
            let factor = 256 / (maxval + 1);
            let t1 = clamp((3 / factor + 3 * near).max(2), near + 1);
            let t2 = clamp((7 / factor + 5 * near).max(3), t1);
            (t1, t2, clamp((21 / factor + 7 * near).max(4), t2))
        };
        let t1 = if p.t1 == 0 { d1 } else { p.t1 };
        let t2 = if p.t2 == 0 { d2 } else { p.t2 };
        let t3 = if p.t3 == 0 { d3 } else { p.t3 };
        if !(near < t1 && t1 <= t2 && t2 <= t3 && t3 <= maxval) {
            return Err(format!("thresholds T1 {t1}, T2 {t2}, T3 {t3} are out of order for MAXVAL {maxval}"));
        }
        let reset = if p.reset == 0 { 64 } else { p.reset };
        if reset < 3 {
            return Err(format!("RESET {reset} (at least 3)"));
        }
        if limit <= qbpp + 1 {
            return Err("coding parameters leave no room for the escape code".into());
        }
        Ok(Self { maxval, near, range, qbpp, limit, t1, t2, t3, reset })
    }

    fn quantize(&self, d: i64) -> i64 {
        let (t1, t2, t3, near) = (self.t1, self.t2, self.t3, self.near);
        if d <= -t3 {
            -4
        } else if d <= -t2 {
            -3
        } else if d <= -t1 {
            -2
        } else if d < -near {
            -1
        } else if d <= near {
            0
        } else if d < t1 {
            1
        } else if d < t2 {
            2
        } else if d < t3 {
            3
        } else {
            4
        }
    }

    /// Reconstructed sample from a prediction and an error (modulo reduction, then clamping).
    fn reconstruct(&self, px: i64, err: i64) -> i64 {
        let step = 2 * self.near + 1;
        let mut rx = px + err * step;
        if rx < -self.near {
            rx += self.range * step;
        } else if rx > self.maxval + self.near {
            rx -= self.range * step;
        }
        rx.clamp(0, self.maxval)
    }
}

/// MSB-first bit reader over entropy-coded data with JPEG-LS bit stuffing: after an FF byte,
/// the next byte carries 7 bits. An FF followed by a byte ≥ 0x80 is a marker and ends the data.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    n: u32,
    stuffed: bool,
    ended: bool,
    real: u64,
    padded: u64,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0, acc: 0, n: 0, stuffed: false, ended: false, real: 0, padded: 0 }
    }

    fn push(&mut self, v: u64, width: u32) {
        self.acc |= v << (64 - self.n - width);
        self.n += width;
    }

    fn fill(&mut self) {
        while self.n <= 56 {
            if self.ended || self.pos >= self.data.len() {
                self.ended = true;
                self.n += 8;
                self.padded += 8;
                continue;
            }
            let b = self.data[self.pos];
            if self.stuffed {
                self.push(u64::from(b & 0x7F), 7);
                self.real += 7;
                self.stuffed = false;
                self.pos += 1;
            } else if b == 0xFF {
                match self.data.get(self.pos + 1) {
                    Some(&next) if next < 0x80 => {
                        self.push(0xFF, 8);
                        self.real += 8;
                        self.stuffed = true;
                        self.pos += 1;
                    }
                    _ => self.ended = true,
                }
            } else {
                self.push(u64::from(b), 8);
                self.real += 8;
                self.pos += 1;
            }
        }
    }

    fn bits(&mut self, k: u32) -> i64 {
        if k == 0 {
            return 0;
        }
        if self.n < k {
            self.fill();
        }
        let v = self.acc >> (64 - k);
        self.acc = if k >= 64 { 0 } else { self.acc << k };
        self.n -= k;
        v as i64
    }

    fn bit(&mut self) -> bool {
        self.bits(1) == 1
    }

    /// Counts 0 bits up to and including the next 1; `None` when more than `max` zeros.
    fn zeros(&mut self, max: u32) -> Option<u32> {
        let mut count = 0;
        loop {
            if self.n == 0 {
                self.fill();
            }
            let lz = self.acc.leading_zeros();
            if lz < self.n {
                count += lz;
                self.acc = self.acc.checked_shl(lz + 1).unwrap_or(0);
                self.n -= lz + 1;
                return (count <= max).then_some(count);
            }
            count += self.n;
            self.acc = 0;
            self.n = 0;
            if count > max {
                return None;
            }
        }
    }

    /// Whether more bits were consumed than the data holds.
    fn overrun(&self) -> bool {
        self.real + self.padded - u64::from(self.n) > self.real
    }
}

#[derive(Clone, Copy)]
struct Context {
    a: i64,
    b: i64,
    c: i64,
    n: i64,
}

#[derive(Clone, Copy)]
struct RunContext {
    a: i64,
    n: i64,
    nn: i64,
}

struct ScanDecoder<'a, 'h> {
    bits: Bits<'a>,
    p: Params,
    frame: &'h FrameHeader,
    components: &'h [usize],
    interleave: u8,
    contexts: Vec<Context>,
    run: [RunContext; 2],
    run_index: [usize; 4],
}

impl<'a, 'h> ScanDecoder<'a, 'h> {
    fn new(data: &'a [u8], p: Params, frame: &'h FrameHeader, scan: &'h ScanHeader) -> Self {
        let a = ((p.range + 32) / 64).max(2);
        Self {
            bits: Bits::new(data),
            p,
            frame,
            components: &scan.components,
            interleave: scan.interleave,
            contexts: vec![Context { a, b: 0, c: 0, n: 1 }; 365],
            run: [RunContext { a, n: 1, nn: 0 }; 2],
            run_index: [0; 4],
        }
    }

    fn value(&mut self, k: u32, limit: u32) -> Result<i64> {
        let qbpp = self.p.qbpp;
        let escape = limit.checked_sub(qbpp + 1).ok_or("invalid code length limit")?;
        let high = self.bits.zeros(escape).ok_or("invalid Golomb code (too many leading zeros)")?;
        let v = if high == escape { self.bits.bits(qbpp) + 1 } else { (i64::from(high) << k) + self.bits.bits(k) };
        if v > 2 * self.p.range {
            return Err(format!("mapped error {v} exceeds the sample range"));
        }
        Ok(v)
    }

    fn run(&mut self, out: &mut [u16]) -> Result<()> {
        let (w, h, nc) = (self.frame.cols, self.frame.rows, self.frame.components);
        let ns = self.components.len();
        // Two lines (previous, current) per coded component, with one sample of margin on
        // each side: index x + 1 holds sample x.
        let mut prev = vec![vec![0i64; w + 2]; ns];
        let mut cur = vec![vec![0i64; w + 2]; ns];
        for y in 0..h {
            for i in 0..ns {
                prev[i][w + 1] = prev[i][w];
                cur[i][0] = prev[i][1];
            }
            let done = if self.interleave == 2 {
                self.line_sample_interleaved(&prev, &mut cur)
            } else {
                (0..ns).try_for_each(|i| self.line(i, &prev[i], &mut cur[i]))
            };
            if self.bits.overrun() {
                return Err(format!("the scan data ends at line {y} of {h} (truncated)"));
            }
            done.map_err(|e| format!("line {y}: {e}"))?;
            for (i, &c) in self.components.iter().enumerate() {
                let row = &cur[i][1..=w];
                for (x, &v) in row.iter().enumerate() {
                    out[(y * w + x) * nc + c] = v as u16;
                }
            }
            std::mem::swap(&mut prev, &mut cur);
        }
        Ok(())
    }

    fn context_id(&self, ra: i64, rb: i64, rc: i64, rd: i64) -> i64 {
        (self.p.quantize(rd - rb) * 9 + self.p.quantize(rb - rc)) * 9 + self.p.quantize(rc - ra)
    }

    fn line(&mut self, i: usize, prev: &[i64], cur: &mut [i64]) -> Result<()> {
        let w = self.frame.cols;
        let mut x = 0;
        while x < w {
            let (ra, rb, rc, rd) = (cur[x], prev[x + 1], prev[x], prev[x + 2]);
            let q = self.context_id(ra, rb, rc, rd);
            if q == 0 {
                x += self.run_mode(i, x, prev, cur)?;
            } else {
                cur[x + 1] = self.regular(q, ra, rb, rc)?;
                x += 1;
            }
        }
        Ok(())
    }

    fn line_sample_interleaved(&mut self, prev: &[Vec<i64>], cur: &mut [Vec<i64>]) -> Result<()> {
        let w = self.frame.cols;
        let ns = self.components.len();
        let mut q = [0i64; 4];
        let mut x = 0;
        while x < w {
            for i in 0..ns {
                q[i] = self.context_id(cur[i][x], prev[i][x + 1], prev[i][x], prev[i][x + 2]);
            }
            if q[..ns].iter().all(|&v| v == 0) {
                x += self.run_mode_pixels(x, prev, cur)?;
            } else {
                for i in 0..ns {
                    cur[i][x + 1] = self.regular(q[i], cur[i][x], prev[i][x + 1], prev[i][x])?;
                }
                x += 1;
            }
        }
        Ok(())
    }

    /// Regular mode (T.87 A.3–A.6): one sample.
    fn regular(&mut self, q: i64, ra: i64, rb: i64, rc: i64) -> Result<i64> {
        let (sign, q) = if q < 0 { (-1, (-q) as usize) } else { (1, q as usize) };
        let px = if rc >= ra.max(rb) {
            ra.min(rb)
        } else if rc <= ra.min(rb) {
            ra.max(rb)
        } else {
            ra + rb - rc
        };
        let ctx = self.contexts[q];
        let px = (px + sign * ctx.c).clamp(0, self.p.maxval);
        let mut k = 0;
        while (ctx.n << k) < ctx.a {
            k += 1;
            if k > 24 {
                return Err("context state out of range".into());
            }
        }
        let m = self.value(k, self.p.limit)?;
        let mut err = if m % 2 == 0 { m / 2 } else { -(m + 1) / 2 };
        if k == 0 && self.p.near == 0 && 2 * ctx.b + ctx.n - 1 < 0 {
            err = -err - 1;
        }
        self.update(q, err);
        Ok(self.p.reconstruct(px, sign * err))
    }

    fn update(&mut self, q: usize, err: i64) {
        let (near, reset) = (self.p.near, self.p.reset);
        let ctx = &mut self.contexts[q];
        ctx.b += err * (2 * near + 1);
        ctx.a += err.abs();
        if ctx.n == reset {
            ctx.a >>= 1;
            ctx.b >>= 1;
            ctx.n >>= 1;
        }
        ctx.n += 1;
        if ctx.b <= -ctx.n {
            ctx.b += ctx.n;
            if ctx.c > -128 {
                ctx.c -= 1;
            }
            if ctx.b <= -ctx.n {
                ctx.b = -ctx.n + 1;
            }
        } else if ctx.b > 0 {
            ctx.b -= ctx.n;
            if ctx.c < 127 {
                ctx.c += 1;
            }
            if ctx.b > 0 {
                ctx.b = 0;
            }
        }
    }

    /// The run length at sample `x` of a line with `w` samples (T.87 A.7.1); `run_index` is
    /// the component's (or, interleaved by sample, the scan's) run index.
    fn run_length(&mut self, ri: usize, x: usize) -> Result<usize> {
        let remaining = self.frame.cols - x;
        let mut count = 0;
        while self.bits.bit() {
            let segment = 1usize << J[self.run_index[ri]];
            let n = segment.min(remaining - count);
            count += n;
            if n == segment && self.run_index[ri] < 31 {
                self.run_index[ri] += 1;
            }
            if count == remaining {
                return Ok(count);
            }
            if self.bits.overrun() {
                return Err("the scan data ends inside a run (truncated)".into());
            }
        }
        count += self.bits.bits(J[self.run_index[ri]]) as usize;
        if count > remaining {
            return Err(format!("a run of {count} samples where {remaining} remain in the line"));
        }
        Ok(count)
    }

    fn run_mode(&mut self, i: usize, x: usize, prev: &[i64], cur: &mut [i64]) -> Result<usize> {
        let ra = cur[x];
        let count = self.run_length(i, x)?;
        cur[x + 1..x + 1 + count].fill(ra);
        let end = x + count;
        if end == self.frame.cols {
            return Ok(count);
        }
        let rb = prev[end + 1];
        cur[end + 1] = if (ra - rb).abs() <= self.p.near {
            let err = self.interruption_error(1, i)?;
            self.p.reconstruct(ra, err)
        } else {
            let err = self.interruption_error(0, i)?;
            self.p.reconstruct(rb, err * if rb - ra < 0 { -1 } else { 1 })
        };
        self.run_index[i] = self.run_index[i].saturating_sub(1);
        Ok(count + 1)
    }

    /// Run mode over whole pixels (sample-interleaved scans): the interruption pixel's
    /// samples are all coded in the first run context, predicted from above.
    fn run_mode_pixels(&mut self, x: usize, prev: &[Vec<i64>], cur: &mut [Vec<i64>]) -> Result<usize> {
        let ns = self.components.len();
        let count = self.run_length(0, x)?;
        for line in cur.iter_mut().take(ns) {
            let ra = line[x];
            line[x + 1..x + 1 + count].fill(ra);
        }
        let end = x + count;
        if end == self.frame.cols {
            return Ok(count);
        }
        let mut errs = [0i64; 4];
        for e in errs.iter_mut().take(ns) {
            *e = self.interruption_error(0, 0)?;
        }
        for i in 0..ns {
            let (ra, rb) = (cur[i][x], prev[i][end + 1]);
            cur[i][end + 1] = self.p.reconstruct(rb, errs[i] * if rb - ra < 0 { -1 } else { 1 });
        }
        self.run_index[0] = self.run_index[0].saturating_sub(1);
        Ok(count + 1)
    }

    /// The error of a run-interruption sample (T.87 A.7.2), with the context update.
    fn interruption_error(&mut self, ritype: i64, ri: usize) -> Result<i64> {
        let ctx = self.run[ritype as usize];
        let temp = if ritype == 1 { ctx.a + (ctx.n >> 1) } else { ctx.a };
        let mut k = 0;
        while (ctx.n << k) < temp {
            k += 1;
            if k > 24 {
                return Err("run context state out of range".into());
            }
        }
        let limit = self.p.limit.checked_sub(J[self.run_index[ri]] + 1).ok_or("invalid run code length")?;
        let em = self.value(k, limit)?;
        let t = em + ritype;
        let map = t & 1 == 1;
        let magnitude = (t + i64::from(map)) / 2;
        let err = if (k != 0 || 2 * ctx.nn >= ctx.n) == map { -magnitude } else { magnitude };
        let ctx = &mut self.run[ritype as usize];
        if err < 0 {
            ctx.nn += 1;
        }
        ctx.a += (em + 1 - ritype) >> 1;
        if ctx.n == self.p.reset {
            ctx.a >>= 1;
            ctx.n >>= 1;
            ctx.nn >>= 1;
        }
        ctx.n += 1;
        Ok(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Expect = Expect { rows: 4, cols: 4, components: 1 };

    /// A 4 × 4, 8-bit, single-component stream around `scan` bytes.
    fn stream(near: u8, scan: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, SOI, 0xFF, SOF55, 0, 11, 8, 0, 4, 0, 4, 1, 1, 0x11, 0];
        s.extend_from_slice(&[0xFF, SOS, 0, 8, 1, 1, 0, near, 0, 0]);
        s.extend_from_slice(scan);
        s.extend_from_slice(&[0xFF, EOI]);
        s
    }

    #[test]
    fn a_flat_image_is_one_run_per_line() {
        // Every line is a run of 4 zeros: with RUNindex 0, 1, 2, 3 that is "1111" for line
        // 0 (four 1-sample segments), then 1-bit segments of growing order.
        let img = decode(&stream(0, &[0xFF, 0x7F, 0xFF, 0x7F]), ONE).unwrap();
        assert_eq!(img.samples, vec![0; 16]);
        assert_eq!(img.precision, 8);
    }

    #[test]
    fn malformed_headers_are_named() {
        let check = |bytes: Vec<u8>, expect: Expect, want: &str| {
            let err = decode(&bytes, expect).unwrap_err();
            assert!(err.contains(want), "{err:?} does not mention {want:?}");
        };
        check(vec![0, 1, 2], ONE, "SOI");
        check(stream(0, &[]), Expect { rows: 5, ..ONE }, "DICOM header declares");
        let mut bad_precision = stream(0, &[]);
        bad_precision[6] = 17;
        check(bad_precision, ONE, "precision 17");
        let mut bad_ilv = stream(0, &[]);
        bad_ilv[23] = 3;
        check(bad_ilv, ONE, "interleave mode 3");
        check(stream(200, &[]), ONE, "NEAR 200");
        check(stream(0, &[]), ONE, "truncated");
        let mut baseline = stream(0, &[]);
        baseline[3] = 0xC0;
        check(baseline, ONE, "not JPEG-LS");
        let mut cut = stream(0, &[]);
        cut.truncate(9);
        check(cut, ONE, "SOF55");
    }

    #[test]
    fn any_truncation_or_bit_flip_is_an_error_or_an_image_never_a_panic() {
        let good = stream(0, &[0xFF, 0x7F, 0xFF, 0x7F]);
        for len in 0..good.len() {
            let _ = decode(&good[..len], ONE);
        }
        for i in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let _ = decode(&bad, ONE);
        }
        // Random scan data of every length: errors or images, bounded work.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for len in 0..200 {
            let scan: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode(&stream((len % 3) as u8, &scan), ONE);
        }
    }
}
