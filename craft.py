import struct, numpy as np, zlib
from PIL import Image
def tiff(fn, w, h, bps, spp, photometric, data, extra=None, endian='<', planar=1, compression=1, colormap=None, fillorder=1, predictor=None):
    E=endian
    entries=[]
    def e(tag,typ,cnt,val): entries.append((tag,typ,cnt,val))
    e(256,3,1,w); e(257,3,1,h)
    e(258,3,spp,bps if spp==1 else None); e(259,3,1,compression); e(262,3,1,photometric)
    if fillorder!=1: e(266,3,1,fillorder)
    e(273,4,1,0); e(277,3,1,spp); e(278,3,1,h); e(279,4,1,len(data))
    if planar!=1: e(284,3,1,planar)
    if predictor: e(317,3,1,predictor)
    if colormap is not None: e(320,3,len(colormap),None)
    if extra: 
        for x in extra: e(*x)
    entries.sort()
    n=len(entries); ifd_off=8; ifd_size=2+12*n+4; extra_off=ifd_off+ifd_size
    blob=b''; ents=b''
    for tag,typ,cnt,val in entries:
        if tag==258 and spp>1:
            arr=struct.pack(E+'H'*spp,*([bps]*spp)); off=extra_off+len(blob); blob+=arr+(b'\0' if len(arr)%2 else b'')
            ents+=struct.pack(E+'HHII',tag,typ,cnt,off); continue
        if tag==320:
            arr=struct.pack(E+'H'*cnt,*colormap); off=extra_off+len(blob); blob+=arr
            ents+=struct.pack(E+'HHII',tag,typ,cnt,off); continue
        if typ==3: ents+=struct.pack(E+'HHI',tag,typ,cnt)+struct.pack(E+'H',val)+b'\0\0'
        else: ents+=struct.pack(E+'HHII',tag,typ,cnt,val)
    data_off=extra_off+len(blob)
    ents=ents.replace(struct.pack(E+'HHII',273,4,1,0),struct.pack(E+'HHII',273,4,1,data_off))
    hdr=(b'II*\0' if E=='<' else b'MM\0*')+struct.pack(E+'I',8)
    open(fn,'wb').write(hdr+struct.pack(E+'H',n)+ents+struct.pack(E+'I',0)+blob+data)
rng=np.random.default_rng(5)
w,h=97,61
rgb=(rng.random((h,w,3))*255).astype('uint8')
tiff('tif2/be_rgb.tif',w,h,8,3,2,rgb.tobytes(),endian='>')
g=(rng.random((h,w))*16).astype('uint8')
def pack(a,bits):
    rows=[]
    for r in a:
        bitsstr=''.join(format(int(v),f'0{bits}b') for v in r); bitsstr+= '0'*((-len(bitsstr))%8)
        rows.append(int(bitsstr,2).to_bytes(len(bitsstr)//8,'big') if bitsstr else b'')
    return b''.join(rows)
tiff('tif2/gray4.tif',w,h,4,1,1,pack(g,4))
tiff('tif2/gray2.tif',w,h,2,1,1,pack(g//4,2))
tiff('tif2/gray4_white0.tif',w,h,4,1,0,pack(g,4))
cm=[(i*4369)%65536 for i in range(16)]+[(i*1111)%65536 for i in range(16)]+[(65535-i*4369)%65536 for i in range(16)]
tiff('tif2/pal4.tif',w,h,4,1,3,pack(g,4),colormap=cm)
tiff('tif2/planar_rgb.tif',w,h,8,3,2,np.ascontiguousarray(rgb.transpose(2,0,1)).tobytes(),planar=2)
tiff('tif2/gray8_white0.tif',w,h,8,1,0,g.astype('uint8').tobytes()*1)
# rgb with predictor 2 deflate
d=rgb.astype(np.int16).copy(); d[:,1:,:]=(rgb[:,1:,:].astype(int)-rgb[:,:-1,:].astype(int))%256
tiff('tif2/rgb_pred_deflate.tif',w,h,8,3,2,zlib.compress(d.astype('uint8').tobytes()),compression=8,predictor=2)
