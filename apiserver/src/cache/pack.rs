//! Compression of the watch cache's idle objects. An object that no event of the window holds
//! any more (it has not changed for a while) is only read by lists and gets, so the cache
//! keeps its JSON compressed with zstd and a dictionary trained on the resource's own objects:
//! the objects of one resource share nearly all their field names and most values (the pods
//! of one Deployment differ in a few names and times), which a dictionary captures and
//! per-object compression without one cannot (a 2.3 KB pod: ~980 bytes alone, ~130 with a
//! dictionary of 16 KiB trained on 500 pods).

use std::{cell::RefCell, sync::Arc};

use zstd::zstd_safe::{CCtx, CDict, DCtx, DDict};

/// Level of the compression: zstd's default, fast enough for objects packed once when they
/// go idle.
const LEVEL: i32 = 3;

/// Why an object could not be packed or unpacked, or a dictionary trained.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("training a dictionary: {0}")]
    Train(std::io::Error),
    #[error("zstd could not load the dictionary")]
    Dictionary,
    #[error("the object is larger than 4 GiB")]
    TooLarge,
    #[error("zstd: {0}")]
    Zstd(&'static str),
}

/// A dictionary trained on one resource's objects, ready for compression and decompression.
pub struct Dictionary {
    cdict: CDict<'static>,
    ddict: DDict<'static>,
    /// The dictionary's own size.
    len: usize,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("len", &self.len)
            .finish()
    }
}

impl Dictionary {
    /// Trains a dictionary of at most `max_len` bytes on `samples` (objects' JSON).
    pub fn train(samples: &[&[u8]], max_len: usize) -> Result<Dictionary, PackError> {
        let sizes: Vec<usize> = samples.iter().map(|s| s.len()).collect();
        let data: Vec<u8> = samples.concat();
        let dict = zstd::dict::from_continuous(&data, &sizes, max_len).map_err(PackError::Train)?;
        Dictionary::load(&dict)
    }

    /// A dictionary from its bytes.
    pub fn load(dict: &[u8]) -> Result<Dictionary, PackError> {
        Ok(Dictionary {
            cdict: CDict::try_create(dict, LEVEL).ok_or(PackError::Dictionary)?,
            ddict: DDict::try_create(dict).ok_or(PackError::Dictionary)?,
            len: dict.len(),
        })
    }

    /// The dictionary's size in bytes.
    pub fn size(&self) -> usize {
        self.len
    }
}

/// An object's JSON, compressed with a dictionary it keeps alive.
pub struct Packed {
    data: Box<[u8]>,
    /// The JSON's length.
    len: u32,
    dict: Arc<Dictionary>,
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("bytes", &self.data.len())
            .field("json", &self.len)
            .finish()
    }
}

thread_local! {
    /// Each thread's decompression context (allocating one per object would cost more than
    /// the decompression).
    static DCTX: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
}

impl Packed {
    /// The JSON back.
    pub fn unpack(&self) -> Result<Vec<u8>, PackError> {
        let mut out = Vec::with_capacity(self.len as usize);
        DCTX.with(|d| {
            d.borrow_mut()
                .decompress_using_ddict(&mut out, &self.data, &self.dict.ddict)
                .map_err(|code| PackError::Zstd(zstd::zstd_safe::get_error_name(code)))
        })?;
        Ok(out)
    }

    /// Bytes held (the dictionary is shared and not counted).
    pub fn size(&self) -> usize {
        self.data.len()
    }
}

/// Compresses objects (one per thread that packs: it holds a compression context).
pub struct Packer {
    cctx: CCtx<'static>,
    buf: Vec<u8>,
}

impl Default for Packer {
    fn default() -> Self {
        Packer {
            cctx: CCtx::create(),
            buf: Vec::new(),
        }
    }
}

impl Packer {
    /// `json` compressed with `dict`.
    pub fn pack(&mut self, json: &[u8], dict: &Arc<Dictionary>) -> Result<Packed, PackError> {
        let len = u32::try_from(json.len()).map_err(|_| PackError::TooLarge)?;
        self.buf.clear();
        self.buf
            .reserve(zstd::zstd_safe::compress_bound(json.len()));
        self.cctx
            .compress_using_cdict(&mut self.buf, json, &dict.cdict)
            .map_err(|code| PackError::Zstd(zstd::zstd_safe::get_error_name(code)))?;
        Ok(Packed {
            data: self.buf.as_slice().into(),
            len,
            dict: dict.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(i: usize) -> Vec<u8> {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"web-{i}","namespace":"ns-{}","uid":"{:032x}","resourceVersion":"{}","labels":{{"app":"web-{}","pod-template-hash":"5d4f8c"}}}},"spec":{{"nodeName":"node-{}","containers":[{{"name":"c","image":"registry.k8s.io/pause:3.10","resources":{{}}}}]}},"status":{{"phase":"Running","podIP":"10.88.{}.{}"}}}}"#,
            i % 10,
            i * 7919,
            1000 + i,
            i / 500,
            i % 1000,
            i / 250,
            i % 250
        )
        .into_bytes()
    }

    #[test]
    fn objects_round_trip_through_a_trained_dictionary_and_shrink() {
        let samples: Vec<Vec<u8>> = (0..1000).map(pod).collect();
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        let dict = Arc::new(Dictionary::train(&refs, 16 << 10).unwrap());
        assert!(dict.size() <= 16 << 10);
        let mut packer = Packer::default();
        let (mut json, mut packed) = (0, 0);
        for i in [0, 1, 999, 5000, 123_456] {
            let object = pod(i);
            let p = packer.pack(&object, &dict).unwrap();
            assert_eq!(p.unpack().unwrap(), object);
            json += object.len();
            packed += p.size();
        }
        assert!(packed * 3 < json, "{packed} bytes packed of {json}");
    }

    #[test]
    fn a_packed_object_outlives_a_newer_dictionary() {
        let a: Vec<Vec<u8>> = (0..500).map(pod).collect();
        let refs: Vec<&[u8]> = a.iter().map(Vec::as_slice).collect();
        let old = Arc::new(Dictionary::train(&refs, 8 << 10).unwrap());
        let mut packer = Packer::default();
        let p = packer.pack(&pod(7), &old).unwrap();
        drop(old);
        let b: Vec<Vec<u8>> = (500..1000).map(pod).collect();
        let refs: Vec<&[u8]> = b.iter().map(Vec::as_slice).collect();
        let new = Arc::new(Dictionary::train(&refs, 8 << 10).unwrap());
        let q = packer.pack(&pod(8), &new).unwrap();
        assert_eq!(p.unpack().unwrap(), pod(7));
        assert_eq!(q.unpack().unwrap(), pod(8));
    }

    #[test]
    fn too_few_samples_are_an_error_not_a_panic() {
        let one = pod(1);
        assert!(matches!(
            Dictionary::train(&[&one], 16 << 10),
            Err(PackError::Train(_))
        ));
    }
}
