pub fn read_npy(_: &std::path::Path) -> crate::Result<super::Dataset> { todo!() }
