// Web-server-like request arena: each request allocates N small objects
// (sizes uniform in [16, MAXS]), touches one byte of each, then frees all in
// allocation order.  usage: arena REQUESTS N MAXS
#include <stdio.h>
#include <stdlib.h>
static unsigned long long r=88172645463325252ull;
static inline unsigned long long xr(void){ r^=r<<13; r^=r>>7; r^=r<<17; return r; }
int main(int argc,char**argv){
  long R=atol(argv[1]); int N=atoi(argv[2]); int M=atoi(argv[3]);
  void** v=malloc(sizeof(void*)*N); unsigned long long chk=0;
  for(long q=0;q<R;q++){
    for(int i=0;i<N;i++){ char*p=malloc(16+xr()%(M-15)); p[0]=(char)i; v[i]=p; }
    for(int i=0;i<N;i++){ chk+=((char*)v[i])[0]; free(v[i]); }
  }
  printf("%llu\n",chk); return 0;
}
