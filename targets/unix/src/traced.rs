//! Devices whose calls are traced ([`crate::trace`]): what a job is lent
//! when the tracing code is installed. Each waiting method's future is a
//! span `device.method` on the track of the job polling it; methods that
//! do not wait pass straight through. The connections and listeners a
//! stack hands out are traced too, under the stack's name.
use crate::trace::call;
use libos::abi::Arg;
use libos::{
    Block, BlockError, BlockInfo, BoxFuture, Console, ConsoleError, Flow, FlowError, Kv, KvError,
    KvRo, Listener, NetError, Netif, Stack, Time, UdpSocket,
};
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;

/// `arg` lent as the device named `name`, its calls traced; values and
/// devices whose methods never wait are lent as they are.
pub fn lend(arg: Arg, name: &str) -> Arg {
    let name: Arc<str> = name.into();
    match arg {
        Arg::Console(inner) => Arg::Console(Arc::new(Traced { inner, name })),
        Arg::Time(inner) => Arg::Time(Arc::new(Traced { inner, name })),
        Arg::KvRo(inner) => Arg::KvRo(Arc::new(Traced { inner, name })),
        Arg::Kv(inner) => Arg::Kv(Arc::new(Traced { inner, name })),
        Arg::Block(inner) => Arg::Block(Arc::new(Traced { inner, name })),
        Arg::Netif(inner) => Arg::Netif(Arc::new(Traced { inner, name })),
        Arg::Stack(inner) => Arg::Stack(Arc::new(Traced { inner, name })),
        other => other,
    }
}

/// A device of type `D` whose waiting calls are traced as `name.method`.
struct Traced<D> {
    inner: D,
    name: Arc<str>,
}

impl<D> Traced<D> {
    /// `call` of `method`, which hands out a device (a listener, a flow):
    /// it is lent traced under this device's name.
    fn call_lending<'a, R: Send + 'a, W: 'a>(
        &'a self,
        method: &'static str,
        fut: BoxFuture<'a, Result<R, NetError>>,
        lend: impl FnOnce(Traced<R>) -> W + Send + 'a,
    ) -> BoxFuture<'a, Result<W, NetError>> {
        let name = self.name.clone();
        call(
            &self.name,
            method,
            Box::pin(async move {
                let inner = fut.await?;
                Ok(lend(Traced { inner, name }))
            }),
        )
    }
}

impl Console for Traced<Arc<dyn Console>> {
    fn write<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>> {
        call(&self.name, "write", self.inner.write(text))
    }
    fn log<'a>(&'a self, line: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>> {
        call(&self.name, "log", self.inner.log(line))
    }
}

impl Time for Traced<Arc<dyn Time>> {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        call(&self.name, "sleep", self.inner.sleep(duration))
    }
}

macro_rules! traced_kv_ro {
    ($ty:ty) => {
        impl KvRo for Traced<$ty> {
            fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, KvError>> {
                call(&self.name, "get", self.inner.get(key))
            }
            fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, KvError>> {
                call(&self.name, "list", self.inner.list(prefix))
            }
        }
    };
}
traced_kv_ro!(Arc<dyn KvRo>);
traced_kv_ro!(Arc<dyn Kv>);

impl Kv for Traced<Arc<dyn Kv>> {
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), KvError>> {
        call(&self.name, "set", self.inner.set(key, value))
    }
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        call(&self.name, "remove", self.inner.remove(key))
    }
}

impl Block for Traced<Arc<dyn Block>> {
    fn info(&self) -> BlockInfo {
        self.inner.info()
    }
    fn read<'a>(&'a self, sector: u64, buf: &'a mut [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
        call(&self.name, "read", self.inner.read(sector, buf))
    }
    fn write<'a>(&'a self, sector: u64, data: &'a [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
        call(&self.name, "write", self.inner.write(sector, data))
    }
    fn flush(&self) -> BoxFuture<'_, Result<(), BlockError>> {
        call(&self.name, "flush", self.inner.flush())
    }
}

impl Netif for Traced<Arc<dyn Netif>> {
    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
    fn reliable(&self) -> bool {
        self.inner.reliable()
    }
    fn send<'a>(&'a self, frame: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        call(&self.name, "send", self.inner.send(frame))
    }
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>> {
        call(&self.name, "recv", self.inner.recv(buf))
    }
}

impl Stack for Traced<Arc<dyn Stack>> {
    fn listen(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn Listener>, NetError>> {
        self.call_lending("listen", self.inner.listen(port), |l| Box::new(l) as _)
    }
    fn connect(&self, addr: SocketAddrV4) -> BoxFuture<'_, Result<Box<dyn Flow>, NetError>> {
        self.call_lending("connect", self.inner.connect(addr), |f| Box::new(f) as _)
    }
    fn udp(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn UdpSocket>, NetError>> {
        call(&self.name, "udp", self.inner.udp(port))
    }
    fn describe(&self) -> Vec<String> {
        self.inner.describe()
    }
}

impl Listener for Traced<Box<dyn Listener>> {
    fn accept(&mut self) -> BoxFuture<'_, Result<libos::net::Accepted, NetError>> {
        let name = self.name.clone();
        let fut = self.inner.accept();
        call(
            &name.clone(),
            "accept",
            Box::pin(async move {
                let (inner, peer) = fut.await?;
                Ok((Box::new(Traced { inner, name }) as Box<dyn Flow>, peer))
            }),
        )
    }
}

impl Flow for Traced<Box<dyn Flow>> {
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        call(&self.name, "read", self.inner.read(buf))
    }
    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        call(&self.name, "write", self.inner.write(data))
    }
    fn close(&mut self) -> BoxFuture<'_, Result<(), FlowError>> {
        call(&self.name, "close", self.inner.close())
    }
    fn write_all<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<(), FlowError>> {
        call(&self.name, "write_all", self.inner.write_all(data))
    }
}
