// alternate phases: small objects (MB_s of 16-512B) alloc+free, then large buffers (MB_l of lo..hi) alloc+touch+free; each phase padded to P ms with sleep
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static double now(){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec*1e-9;}
int main(int c,char**v){ int rounds=atoi(v[1]); double P=atof(v[2])/1000; long MBs=atol(v[3]), MBl=atol(v[4]); size_t lo=c>5?atol(v[5]):300000, hi=c>6?atol(v[6]):4<<20;
 unsigned r=1; static void* arr[1<<23]; double busy=0, t0=now();
 for(int k=0;k<rounds;k++){
  double s=now(); long n=0; size_t tot=0;
  while(tot < (size_t)MBs<<20){ r=r*1103515245+12345; size_t z=16+(r>>8)%497; char* p=malloc(z); p[0]=1; arr[n++]=p; tot+=z; }
  for(long i=0;i<n;i++) free(arr[i]);
  double e=now(); busy+=e-s; if(e-s<P) usleep((P-(e-s))*1e6);
  s=now(); n=0; tot=0;
  while(tot < (size_t)MBl<<20){ r=r*1103515245+12345; size_t z=lo+(r>>8)%(hi-lo); char* p=malloc(z); memset(p,1,z); arr[n++]=p; tot+=z; }
  for(long i=0;i<n;i++) free(arr[i]);
  e=now(); busy+=e-s; if(e-s<P) usleep((P-(e-s))*1e6);
 }
 fprintf(stderr,"busy %.3f wall %.3f\n",busy,now()-t0); return 0;}
