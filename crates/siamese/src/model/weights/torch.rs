//! Readers for PyTorch checkpoints (`torch.save` of a state dict) without Python: the legacy
//! format (a sequence of pickles followed by raw storages, e.g. torchvision's
//! `mobilenet_v2-b0353104.pth`) and the zip format (torch ≥ 1.6: `*/data.pkl` + `*/data/<key>`).
//!
//! Legacy layout: pickle(magic number), pickle(protocol version), pickle(sys info), pickle(state
//! dict, storages as persistent ids), pickle(sorted storage keys), then for each key in that
//! order an 8-byte little-endian element count followed by the storage's raw little-endian bytes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::pickle::{self, Value};
use super::WeightTensor;
use crate::{Error, Result};

/// The magic number 0x1950a86a20f9469cfc6c that torch writes as the first pickle of a legacy
/// file, as the little-endian bytes of its `LONG1` encoding.
const LEGACY_MAGIC_BIGINT: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Element types of torch storages.
#[derive(Debug, Clone, Copy, PartialEq)]
enum StorageType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StorageType {
    fn from_class(class: &Value) -> Option<StorageType> {
        let name = match class {
            Value::Global { name, .. } => name.as_str(),
            _ => return None,
        };
        Some(match name {
            "FloatStorage" => StorageType::F32,
            "DoubleStorage" => StorageType::F64,
            "HalfStorage" => StorageType::F16,
            "BFloat16Storage" => StorageType::BF16,
            "LongStorage" => StorageType::I64,
            "IntStorage" => StorageType::I32,
            "ShortStorage" => StorageType::I16,
            "CharStorage" => StorageType::I8,
            "ByteStorage" => StorageType::U8,
            "BoolStorage" => StorageType::Bool,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            StorageType::F64 | StorageType::I64 => 8,
            StorageType::F32 | StorageType::I32 => 4,
            StorageType::F16 | StorageType::BF16 | StorageType::I16 => 2,
            StorageType::I8 | StorageType::U8 | StorageType::Bool => 1,
        }
    }

    /// Element `i` of `bytes` as `f32`.
    fn read(self, bytes: &[u8], i: usize) -> f32 {
        let s = self.size();
        let b = &bytes[i * s..(i + 1) * s];
        match self {
            StorageType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            StorageType::F64 => f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32,
            StorageType::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            StorageType::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            StorageType::I64 => i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32,
            StorageType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            StorageType::I16 => i16::from_le_bytes([b[0], b[1]]) as f32,
            StorageType::I8 => b[0] as i8 as f32,
            StorageType::U8 | StorageType::Bool => b[0] as f32,
        }
    }
}

/// A storage reference decoded from a persistent id.
struct StorageRef {
    kind: StorageType,
    key: String,
    /// Element offset into the root storage (legacy views), usually 0.
    view_offset: usize,
}

fn storage_ref(pid: &Value, path: &Path) -> Result<StorageRef> {
    let bad = || Error::format(path, format!("unexpected torch persistent id {pid:?}"));
    let items = pid.as_seq().ok_or_else(bad)?;
    if items.len() < 5 || items[0].as_str() != Some("storage") {
        return Err(bad());
    }
    let kind = StorageType::from_class(&items[1]).ok_or_else(|| {
        Error::format(
            path,
            format!("unsupported torch storage type {:?}", items[1]),
        )
    })?;
    let key = match &items[2] {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => return Err(bad()),
    };
    // Legacy persistent ids carry (view_key, offset, size) for storage views.
    let view_offset = match items.get(5) {
        Some(Value::Tuple(view)) if view.len() == 3 => view[1].as_int().ok_or_else(bad)? as usize,
        _ => 0,
    };
    Ok(StorageRef {
        kind,
        key,
        view_offset,
    })
}

/// Walks the unpickled state dict and turns every `_rebuild_tensor*` call into a tensor whose
/// values are read from `storages` (raw bytes by key).
fn collect_tensors(
    root: &Value,
    storages: &mut dyn FnMut(&str) -> Result<Vec<u8>>,
    path: &Path,
) -> Result<BTreeMap<String, WeightTensor>> {
    let dict = unwrap_state_dict(root)
        .ok_or_else(|| Error::format(path, "the checkpoint holds no state dict"))?;
    let mut cache: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (key, value) in dict {
        let Some(name) = key.as_str() else { continue };
        let Some((storage, offset, size, stride)) = rebuild_args(value) else {
            continue; // not a tensor (e.g. an int hyper-parameter): skip
        };
        let sref = storage_ref(storage, path)?;
        if !cache.contains_key(&sref.key) {
            let bytes = storages(&sref.key)?;
            cache.insert(sref.key.clone(), bytes);
        }
        let bytes = &cache[&sref.key];
        let shape: Vec<usize> = size.iter().map(|&d| d as usize).collect();
        let n: usize = shape.iter().product();
        let available = bytes.len() / sref.kind.size();
        let mut values = Vec::with_capacity(n);
        // Gather through the strides (checkpoints are almost always contiguous, but views and
        // transposed parameters are legal).
        let mut index = vec![0usize; shape.len()];
        for _ in 0..n {
            let mut at = sref.view_offset + offset as usize;
            for (d, &i) in index.iter().enumerate() {
                at += i * stride[d] as usize;
            }
            if at >= available {
                return Err(Error::format(
                    path,
                    format!("tensor {name} reads past the end of storage {}", sref.key),
                ));
            }
            values.push(sref.kind.read(bytes, at));
            for d in (0..shape.len()).rev() {
                index[d] += 1;
                if index[d] < shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        out.insert(name.to_string(), WeightTensor { shape, values });
    }
    Ok(out)
}

/// The state dict inside a checkpoint: the top-level dict, or its `state_dict`/`model` entry.
fn unwrap_state_dict(root: &Value) -> Option<&[(Value, Value)]> {
    let items = pickle::dict_items(root)?;
    for wrapper in ["state_dict", "model", "model_state_dict"] {
        if let Some((_, inner)) = items.iter().find(|(k, _)| k.as_str() == Some(wrapper)) {
            if let Some(inner_items) = pickle::dict_items(inner) {
                return Some(inner_items);
            }
        }
    }
    Some(items)
}

/// `(storage, offset, size, stride)` of a `torch._utils._rebuild_tensor[_v2]` call.
fn rebuild_args(v: &Value) -> Option<(&Value, i64, Vec<i64>, Vec<i64>)> {
    let Value::Reduce { callable, args } = v else {
        return None;
    };
    let name = callable.global_name()?;
    if !name.starts_with("torch._utils._rebuild_tensor") {
        return None;
    }
    let args = args.as_seq()?;
    let Value::Persistent(storage) = args.first()? else {
        return None;
    };
    let offset = args.get(1)?.as_int()?;
    let size: Vec<i64> = args
        .get(2)?
        .as_seq()?
        .iter()
        .filter_map(Value::as_int)
        .collect();
    let stride: Vec<i64> = match args.get(3).and_then(Value::as_seq) {
        Some(s) => s.iter().filter_map(Value::as_int).collect(),
        None => contiguous_strides(&size),
    };
    if stride.len() != size.len() {
        return None;
    }
    Some((storage, offset, size, stride))
}

fn contiguous_strides(size: &[i64]) -> Vec<i64> {
    let mut s = vec![1i64; size.len()];
    for d in (0..size.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * size[d + 1];
    }
    s
}

/// Whether `bytes` start like a legacy torch file (a protocol-2 pickle of the magic number).
pub fn is_legacy(bytes: &[u8]) -> bool {
    bytes.len() > 14
        && bytes[0] == 0x80
        && bytes[2] == 0x8a
        && bytes[3] == 10
        && bytes[4..14] == LEGACY_MAGIC_BIGINT
}

/// Reads a legacy (non-zip) torch checkpoint held in `bytes`.
pub fn read_legacy(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, WeightTensor>> {
    let err = |m: String| Error::format(path, m);
    let mut pos = 0usize;
    let mut next = |what: &str| -> Result<Value> {
        let (v, used) = pickle::load(&bytes[pos..]).map_err(|m| err(format!("{what}: {m}")))?;
        pos += used;
        Ok(v)
    };
    let magic = next("magic number")?;
    let magic_ok = matches!(&magic, Value::BigInt(b) if b[..] == LEGACY_MAGIC_BIGINT);
    if !magic_ok {
        return Err(err(
            "not a torch legacy checkpoint (bad magic number)".into()
        ));
    }
    let protocol = next("protocol version")?;
    if protocol.as_int() != Some(1001) {
        return Err(err(format!(
            "unsupported torch protocol version {protocol:?}"
        )));
    }
    let _sys_info = next("system info")?;
    let root = next("state dict")?;
    let keys = next("storage keys")?;
    let keys: Vec<String> = keys
        .as_seq()
        .ok_or_else(|| err("storage key list is not a list".into()))?
        .iter()
        .map(|k| match k {
            Value::Str(s) => Ok(s.clone()),
            Value::Int(i) => Ok(i.to_string()),
            other => Err(err(format!("bad storage key {other:?}"))),
        })
        .collect::<Result<_>>()?;

    // Storage element types come from the persistent ids inside the state dict.
    let mut kinds: BTreeMap<String, StorageType> = BTreeMap::new();
    if let Some(items) = unwrap_state_dict(&root) {
        for (_, v) in items {
            if let Some((storage, ..)) = rebuild_args(v) {
                let r = storage_ref(storage, path)?;
                kinds.insert(r.key, r.kind);
            }
        }
    }
    let mut raw: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for key in &keys {
        let kind = *kinds
            .get(key)
            .ok_or_else(|| err(format!("storage {key} is listed but used by no tensor")))?;
        let head = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| err(format!("truncated before storage {key}")))?;
        let numel = u64::from_le_bytes(head.try_into().unwrap_or([0; 8])) as usize;
        pos += 8;
        let len = numel
            .checked_mul(kind.size())
            .filter(|&l| pos + l <= bytes.len())
            .ok_or_else(|| err(format!("truncated in storage {key} ({numel} elements)")))?;
        raw.insert(key.clone(), bytes[pos..pos + len].to_vec());
        pos += len;
    }
    if pos != bytes.len() {
        return Err(err(format!(
            "{} unexpected trailing bytes after the last storage",
            bytes.len() - pos
        )));
    }
    collect_tensors(
        &root,
        &mut |key| {
            raw.remove(key)
                .ok_or_else(|| err(format!("storage {key} is missing from the file")))
        },
        path,
    )
}

/// Reads a zip-format torch checkpoint held in `bytes`.
pub fn read_zip(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, WeightTensor>> {
    let err = |m: String| Error::format(path, m);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| err(format!("not a readable zip archive: {e}")))?;
    let pkl_name = (0..archive.len())
        .filter_map(|i| archive.by_index(i).ok().map(|f| f.name().to_string()))
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() == 1)
        .ok_or_else(|| err("zip checkpoint without */data.pkl".into()))?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let read_entry = |archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>, name: &str| {
        let mut f = archive
            .by_name(name)
            .map_err(|e| err(format!("{name}: {e}")))?;
        let mut out = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut out)
            .map_err(|e| err(format!("{name}: {e}")))?;
        Ok::<_, Error>(out)
    };
    let pkl = read_entry(&mut archive, &pkl_name)?;
    let (root, _) = pickle::load(&pkl).map_err(|m| err(format!("{pkl_name}: {m}")))?;
    collect_tensors(
        &root,
        &mut |key| read_entry(&mut archive, &format!("{prefix}data/{key}")),
        path,
    )
}
